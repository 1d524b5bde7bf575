// The E2B fields of sandboxes in the controller's database (table e2b_sandboxes, store migration 8): written through
// on every change, read back at start, so a restarted controller still knows its sandboxes (the SDK's connect,
// their envd tokens, timeouts). A row goes with its VM (ON DELETE CASCADE).
import type { Db } from '../store/db.js';
import type { E2bFields } from './model.js';

export interface E2bPersistence {
  load(): [string, E2bFields][];
  save(vmId: string, f: E2bFields): void;
  remove(vmId: string): void;
}

export class E2bRows implements E2bPersistence {
  constructor(private readonly db: Db) {}

  load(): [string, E2bFields][] {
    const rows = this.db.prepare('SELECT vm_id AS id, fields FROM e2b_sandboxes ORDER BY vm_id').all() as { id: string; fields: string }[];
    return rows.map((r) => [r.id, JSON.parse(r.fields) as E2bFields]);
  }

  save(vmId: string, f: E2bFields): void {
    // A VM that is already gone has no row to keep (the foreign key): nothing to remember.
    this.db.prepare('INSERT INTO e2b_sandboxes (vm_id, fields) SELECT @id, @fields WHERE EXISTS (SELECT 1 FROM vms WHERE id = @id) ON CONFLICT (vm_id) DO UPDATE SET fields = excluded.fields')
      .run({ id: vmId, fields: JSON.stringify(f) });
  }

  remove(vmId: string): void {
    this.db.prepare('DELETE FROM e2b_sandboxes WHERE vm_id = ?').run(vmId);
  }
}
