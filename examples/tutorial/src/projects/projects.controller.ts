import { BadRequestException, Body, Controller, Get, Post } from '@nestjs/common';
import { ProjectsService } from './projects.service.js';

@Controller('projects')
export class ProjectsController {
  constructor(private readonly projects: ProjectsService) {}

  @Get()
  list() {
    return this.projects.list();
  }

  @Post()
  create(@Body() body: { name?: unknown }) {
    if (typeof body?.name !== 'string' || body.name.trim() === '') {
      throw new BadRequestException('name must be a non-empty string');
    }
    return this.projects.create(body.name);
  }
}
