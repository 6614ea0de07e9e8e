import { ProjectScopedStore } from '../db/project-scoped-store.js';
import { EnvironmentModel } from './model.js';

export const environmentStore = new ProjectScopedStore<EnvironmentModel>(EnvironmentModel);
