import { BaseModel } from '../db/model.js';

export class UserModel extends BaseModel {
  static override tableName = 'users';
  id!: number;
  email!: string;
  name!: string;
  createdAt!: Date;
}
