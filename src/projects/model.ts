import type { Plan } from '../config.js';
import { BaseModel } from '../db/model.js';

export class ProjectModel extends BaseModel {
  static override tableName = 'projects';
  id!: number;
  name!: string;
  plan!: Plan;
  createdAt!: Date;
  updatedAt!: Date;
}
