// Progress for long work (image build, boot phases). Human progress goes to stderr so stdout stays clean for
// --json; quiet mode (CI, --quiet) prints nothing but failures.

export interface Progress {
  phase(name: string): void;
  info(message: string): void;
  done(name: string, ms: number): void;
  fail(name: string, error: unknown): void;
}

export type ProgressMode = 'human' | 'quiet' | 'silent';

export function progressModeFromEnv(opts: { quiet?: boolean } = {}): ProgressMode {
  if (opts.quiet || process.env.HANGAR_QUIET === '1') return 'quiet';
  return 'human';
}

export function createProgress(mode: ProgressMode = 'human', write: (s: string) => void = (s) => process.stderr.write(s)): Progress {
  const started = Date.now();
  const stamp = (): string => `[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s]`;
  if (mode === 'silent') return { phase() {}, info() {}, done() {}, fail() {} };
  if (mode === 'quiet') {
    return {
      phase() {}, info() {}, done() {},
      fail(name, error) { write(`${stamp()} ${name} failed: ${error instanceof Error ? error.message : String(error)}\n`); },
    };
  }
  return {
    phase(name) { write(`${stamp()} ${name} …\n`); },
    info(message) { write(`${stamp()}   ${message}\n`); },
    done(name, ms) { write(`${stamp()} ${name} done in ${(ms / 1000).toFixed(1)}s\n`); },
    fail(name, error) { write(`${stamp()} ${name} FAILED: ${error instanceof Error ? error.message : String(error)}\n`); },
  };
}

export const silentProgress: Progress = createProgress('silent');
