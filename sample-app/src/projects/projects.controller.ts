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
import { optional, ParseIdPipe, text, ValidBody, type Parsed } from '../common/validation.js';
import { ProjectsService } from './projects.service.js';
import { UserAuthGuard } from '../auth/user-auth.guard.js';

const NewProject = {
  name: text({ max: 200 }),
  description: optional(text({ max: 2000, allowEmpty: true })),
};
const ProjectPatch = {
  name: optional(text({ max: 200 })),
  description: optional(text({ max: 2000, allowEmpty: true })),
};

/** Every route here needs a signed-in user; their session's tenant picks whose projects these are. */
@UseGuards(UserAuthGuard)
@Controller('projects')
export class ProjectsController {
  constructor(private readonly projects: ProjectsService) {}

  @Get()
  list() {
    return this.projects.list();
  }

  @Post()
  create(@Body(new ValidBody(NewProject)) input: Parsed<typeof NewProject>) {
    return this.projects.create(input);
  }

  @Get(':id')
  get(@Param('id', ParseIdPipe) id: number) {
    return this.projects.get(id);
  }

  @Patch(':id')
  update(
    @Param('id', ParseIdPipe) id: number,
    @Body(new ValidBody(ProjectPatch, { atLeastOne: true })) patch: Parsed<typeof ProjectPatch>,
  ) {
    return this.projects.update(id, patch);
  }

  @Delete(':id')
  @HttpCode(204)
  remove(@Param('id', ParseIdPipe) id: number) {
    return this.projects.remove(id);
  }
}
