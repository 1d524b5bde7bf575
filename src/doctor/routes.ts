// GET /v1/doctor[?vm=ID]: the doctor run by the controller, which owns the VMs, the network and the images.
import type { FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import type { AgentPort } from '../agent/port.js';
import type { ApiRoute } from '../api/routes.js';
import { errorSchema, ID_MAX_LENGTH } from '../api/schemas.js';
import { REF_PATTERN } from '../util/validate.js';
import { runDoctor, type DoctorTarget } from './doctor.js';

const evidenceSchema = {
  type: 'object',
  required: ['text'],
  properties: { line: { type: 'integer' }, text: { type: 'string' } },
} as const;

/** A finding: the shape of `hangar kernel lint --json` findings, plus the check and what explains it. */
export const doctorFindingSchema = {
  type: 'object',
  required: ['code', 'severity', 'option', 'message', 'fix', 'evidence', 'check'],
  properties: {
    code: { type: 'string' },
    severity: { type: 'string', enum: ['error', 'warning', 'info'] },
    option: { type: ['string', 'null'] },
    message: { type: 'string' },
    fix: { type: 'string' },
    evidence: { type: 'array', items: evidenceSchema },
    check: { type: 'string' },
    causedBy: { type: 'array', items: { type: 'string' } },
  },
} as const;

export const doctorReportSchema = {
  type: 'object',
  required: ['ok', 'vm', 'checks', 'findings', 'mostLikelyCause', 'startedAt', 'durationMs'],
  properties: {
    ok: { type: 'boolean' },
    vm: {
      type: ['object', 'null'],
      properties: {
        id: { type: 'string' }, name: { type: 'string' }, state: { type: 'string' },
        ip: { type: ['string', 'null'] }, mac: { type: ['string', 'null'] }, tap: { type: ['string', 'null'] },
        snapshotId: { type: ['string', 'null'], description: 'the golden snapshot the VM was cloned from' },
        hibernated: { type: 'boolean', description: 'stopped with its memory saved (a start restores it)' },
      },
    },
    checks: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'scope', 'title', 'ran', 'saw', 'status', 'findings', 'ms'],
        properties: {
          id: { type: 'string' },
          scope: { type: 'string', enum: ['host', 'image', 'vm'] },
          title: { type: 'string' },
          ran: { type: 'array', items: { type: 'string' } },
          saw: { type: 'string' },
          status: { type: 'string', enum: ['ok', 'info', 'warning', 'error', 'skipped'] },
          findings: { type: 'array', items: doctorFindingSchema },
          ms: { type: 'integer' },
        },
      },
    },
    findings: { type: 'array', items: doctorFindingSchema },
    mostLikelyCause: { anyOf: [doctorFindingSchema, { type: 'null' }] },
    startedAt: { type: 'string', format: 'date-time' },
    durationMs: { type: 'integer' },
  },
} as const;

const doctorQuery = Type.Object({
  vm: Type.Optional(Type.String({ minLength: 1, maxLength: ID_MAX_LENGTH, pattern: REF_PATTERN, description: 'also examine this VM (id or name)' })),
}, { additionalProperties: false });
type DoctorQuery = Static<typeof doctorQuery>;

/** The doctor's routes over what it examines (the composition root passes the VM manager). */
/** `agents`: the guest agents, whose evidence the doctor takes beside the console's when a VM's agent answers. */
export function doctorRoutes(manager: DoctorTarget, agents?: () => AgentPort | undefined): ApiRoute[] {
  return [
    {
      method: 'GET', url: '/v1/doctor', summary: 'Host, image and VM checks, most likely cause first (?vm=ID adds that VM); admin keys only (the host is everyone\'s)', auth: 'bearer', scope: 'admin',
      schema: { querystring: doctorQuery, response: { 200: doctorReportSchema, '4xx': errorSchema, '5xx': errorSchema } },
      handler: async (req) => {
        const q = (req as FastifyRequest<{ Querystring: DoctorQuery }>).query;
        const a = agents?.();
        return runDoctor({ manager, ...(a ? { agents: a } : {}) }, q.vm !== undefined ? { vm: q.vm } : {});
      },
    },
  ];
}
