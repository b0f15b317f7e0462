import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  Patch,
  Post,
  UseGuards,
} from '@nestjs/common';
import {
  boolean,
  id,
  nullable,
  optional,
  ParseIdPipe,
  text,
  ValidBody,
  type Parsed,
} from '../common/validation.js';
import { TasksService } from './tasks.service.js';
import { UserAuthGuard } from '../auth/user-auth.guard.js';

const NewTask = {
  title: text({ max: 500 }),
  assigneeId: optional(nullable(id)),
};
const TaskPatch = {
  title: optional(text({ max: 500 })),
  done: optional(boolean),
  assigneeId: optional(nullable(id)),
};

@UseGuards(UserAuthGuard)
@Controller()
export class TasksController {
  constructor(private readonly tasks: TasksService) {}

  @Get('projects/:projectId/tasks')
  list(@Param('projectId', ParseIdPipe) projectId: number) {
    return this.tasks.list(projectId);
  }

  @Post('projects/:projectId/tasks')
  create(
    @Param('projectId', ParseIdPipe) projectId: number,
    @Body(new ValidBody(NewTask)) input: Parsed<typeof NewTask>,
  ) {
    return this.tasks.create(projectId, input);
  }

  @Patch('tasks/:id')
  update(
    @Param('id', ParseIdPipe) taskId: number,
    @Body(new ValidBody(TaskPatch, { atLeastOne: true })) patch: Parsed<typeof TaskPatch>,
  ) {
    return this.tasks.update(taskId, patch);
  }

  @Delete('tasks/:id')
  @HttpCode(204)
  remove(@Param('id', ParseIdPipe) taskId: number) {
    return this.tasks.remove(taskId);
  }
}
