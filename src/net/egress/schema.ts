// The network policy's one request schema (create's `network` field and PATCH /v1/vms/:id/network): it validates
// the shape, feeds /openapi.json and types the handlers; normalisePolicy (policy.ts) then checks the entries.
import { Type, type Static } from 'typebox';
import { EGRESS_MODES, MAX_ENTRIES } from './policy.js';

const entry = Type.String({ minLength: 1, maxLength: 260, description: 'an IPv4 address or CIDR, a host name, or "*.domain"' });
const nullable = <T extends ReturnType<typeof Type.Integer>>(t: T) => Type.Union([t, Type.Null()]);

export const networkPolicySchema = Type.Object({
  egress: Type.Optional(Type.Object({
    mode: Type.Optional(Type.Enum(EGRESS_MODES, { description: 'none: no way out; internet: anywhere but private, link-local and host ranges; allowlist: only `allow`' })),
    allow: Type.Optional(Type.Array(entry, { maxItems: MAX_ENTRIES, description: 'allowlist entries; a CIDR here may name a private range' })),
    deny: Type.Optional(Type.Array(entry, { maxItems: MAX_ENTRIES, description: 'always refused, in every mode' })),
    proxy: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 2048, description: 'http://user:pass@host:port or socks5://…: the guest\'s TCP leaves through it transparently' }), Type.Null()])),
  }, { additionalProperties: false })),
  group: Type.Optional(Type.Union([Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,31}$', description: 'VMs of one group may reach each other' }), Type.Null()])),
  limits: Type.Optional(Type.Object({
    bandwidthMbit: Type.Optional(nullable(Type.Integer({ minimum: 1, maximum: 100_000, description: 'each direction, Mbit/s' }))),
    connections: Type.Optional(nullable(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'concurrent connections' }))),
  }, { additionalProperties: false })),
}, { additionalProperties: false, description: 'network policy; fields not given keep their current (or default) value' });

export type NetworkPolicyBody = Static<typeof networkPolicySchema>;
