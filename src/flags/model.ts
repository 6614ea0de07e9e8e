import { BaseModel } from '../db/model.js';

export class FlagModel extends BaseModel {
  static override tableName = 'flags';
  id!: number;
  projectId!: number;
  key!: string;
  name!: string;
  description!: string;
  archivedAt!: Date | null;
  createdAt!: Date;
  updatedAt!: Date;
}
