import Router from '@koa/router';
import { object } from 'yup';
import { actorOf } from '../http/auth.js';
import { nameField } from '../http/schemas.js';
import { parseBody } from '../http/validation.js';
import type { ProjectModel } from './model.js';
import type { IntegrationUsage, ProjectService } from './service.js';

const updateSchema = object({ name: nameField().required() });

export function projectRoutes(projects: ProjectService): Router {
  const router = new Router();
  const answer = async (project: ProjectModel) => presentProject(project, await projects.integrationUsage(project));
  router.get('/project', async (ctx) => {
    ctx.body = await answer(await projects.get(actorOf(ctx)));
  });
  router.put('/project', async (ctx) => {
    const input = parseBody(updateSchema, ctx.request.body);
    ctx.body = await answer(await projects.update(actorOf(ctx), input));
  });
  return router;
}

export function presentProject(project: ProjectModel, integrations: IntegrationUsage) {
  return {
    id: project.id,
    name: project.name,
    plan: project.plan,
    integrations,
    createdAt: project.createdAt.toISOString(),
    updatedAt: project.updatedAt.toISOString(),
  };
}
