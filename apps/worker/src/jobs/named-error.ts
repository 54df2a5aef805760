/** An error whose `name` is its class's name (so a subclass needs no constructor of its own). */
export class NamedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
