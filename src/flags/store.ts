import { ProjectScopedStore } from '../db/project-scoped-store.js';
import { FlagModel } from './model.js';

export const flagStore = new ProjectScopedStore<FlagModel>(FlagModel);
