import { AppError } from './errors.js';

/**
 * At most `limit` requests of one project run at once in this api process; the project's others
 * wait their turn, in order, holding no database connection, for `waitMs` at most (then `503
 * unavailable`, as a request waiting that long for a connection of the pool would be). The pool is
 * shared by every project: without this, one key holder's requests waiting for a row lock (dozens
 * of PUTs of one segment at once) held every connection, and other projects' requests waited for
 * one for seconds, then failed 503.
 */
export class ProjectGate {
  private readonly projects = new Map<number, { running: number; waiting: Array<() => void> }>();

  constructor(
    private readonly limit: number,
    private readonly waitMs: number,
  ) {}

  async run<T>(projectId: number, work: () => Promise<T>): Promise<T> {
    let project = this.projects.get(projectId);
    if (!project) {
      project = { running: 0, waiting: [] };
      this.projects.set(projectId, project);
    }
    if (project.running < this.limit) project.running += 1;
    else await this.turn(project); // a finishing request hands its place on
    try {
      return await work();
    } finally {
      const next = project.waiting.shift();
      if (next) next();
      else if (--project.running === 0) this.projects.delete(projectId);
    }
  }

  private turn(project: { waiting: Array<() => void> }): Promise<void> {
    return new Promise((resolve, reject) => {
      const go = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        project.waiting.splice(project.waiting.indexOf(go), 1);
        reject(new AppError('unavailable', `this project has more than ${this.limit} requests under way here, and this one waited ${this.waitMs / 1000} s for its turn; try again shortly`));
      }, this.waitMs);
      project.waiting.push(go);
    });
  }
}
