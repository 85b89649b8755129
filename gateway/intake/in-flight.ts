/**
 * Spool files the accept path is still settling (their jobs being added, or the file being abandoned): spool recovery
 * keeps off them. Counted, because the messages of one batch file share it and each settles on its own.
 */
export interface InFlightFiles {
  add(fileId: string): void;
  delete(fileId: string): void;
  has(fileId: string): boolean;
}

export class InFlight implements InFlightFiles {
  private readonly counts = new Map<string, number>();

  add(fileId: string): void {
    this.counts.set(fileId, (this.counts.get(fileId) ?? 0) + 1);
  }

  delete(fileId: string): void {
    const n = (this.counts.get(fileId) ?? 0) - 1;
    if (n > 0) this.counts.set(fileId, n);
    else this.counts.delete(fileId);
  }

  has(fileId: string): boolean {
    return this.counts.has(fileId);
  }
}
