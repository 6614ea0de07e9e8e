import Router from '@koa/router';
import { object } from 'yup';
import { actorOf } from '../http/auth.js';
import { nameField } from '../http/schemas.js';
import { parseBody } from '../http/validation.js';
import type { ProjectModel } from './model.js';
import type { ProjectService } from './service.js';

const updateSchema = object({ name: nameField().required() });

export function projectRoutes(projects: ProjectService): Router {
  const router = new Router();
  router.get('/project', async (ctx) => {
    ctx.body = presentProject(await projects.get(actorOf(ctx)));
  });
  router.put('/project', async (ctx) => {
    const input = parseBody(updateSchema, ctx.request.body);
    ctx.body = presentProject(await projects.update(actorOf(ctx), input));
  });
  return router;
}

export function presentProject(project: ProjectModel) {
  return {
    id: project.id,
    name: project.name,
    plan: project.plan,
    createdAt: project.createdAt.toISOString(),
    updatedAt: project.updatedAt.toISOString(),
  };
}
