import { BaseModel } from '../db/model.js';

export class ApiKeyModel extends BaseModel {
  static override tableName = 'api_keys';
  id!: number;
  projectId!: number;
  userId!: number;
  environmentId!: number | null;
  name!: string;
  secretHash!: string;
  tokenPrefix!: string;
  enabled!: boolean;
  createdAt!: Date;
  updatedAt!: Date;
}
