import { BaseModel } from '../db/model.js';

export class EnvironmentModel extends BaseModel {
  static override tableName = 'environments';
  id!: number;
  projectId!: number;
  key!: string;
  name!: string;
  createdAt!: Date;
  updatedAt!: Date;
}
