// Per-tenant metrics in the Prometheus text format: what a tenant's key gets from /metrics (its own VMs by state,
// its usage and quotas, nothing of the fleet), and what an admin's /metrics adds for every tenant. Pure.
import type { Quotas, Usage } from './keys.js';

export interface TenantMetrics {
  tenant: string;
  vmsByState: Record<string, number>;
  usage: Usage;
  quotas: Quotas;
}

const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function renderTenantMetrics(rows: readonly TenantMetrics[]): string {
  const out: string[] = [
    '# HELP hangar_tenant_vms VMs of a tenant, by state', '# TYPE hangar_tenant_vms gauge',
  ];
  for (const r of rows) for (const [state, n] of Object.entries(r.vmsByState)) out.push(`hangar_tenant_vms{tenant="${esc(r.tenant)}",state="${esc(state)}"} ${n}`);
  out.push('# HELP hangar_tenant_usage What a tenant holds (vms, vcpus, memMiB, diskMiB)', '# TYPE hangar_tenant_usage gauge');
  for (const r of rows) for (const [k, v] of Object.entries(r.usage)) out.push(`hangar_tenant_usage{tenant="${esc(r.tenant)}",resource="${k}"} ${v}`);
  out.push('# HELP hangar_tenant_quota A tenant\'s quota (absent: no limit)', '# TYPE hangar_tenant_quota gauge');
  for (const r of rows) for (const [k, v] of Object.entries(r.quotas)) if (v !== null) out.push(`hangar_tenant_quota{tenant="${esc(r.tenant)}",resource="${k}"} ${v}`);
  return out.join('\n') + '\n';
}
