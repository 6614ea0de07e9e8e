/** Who makes a change: the user behind the API key of the request, acting in that key's project. */
export interface Actor {
  projectId: number;
  apiKeyId: number;
  user: { id: number; name: string; email: string };
}
