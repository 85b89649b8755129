import { UsageError, type Command } from '../command/command.js';

const usage = `usage: mailroom load smtp   --target HOST:PORT [--tls starttls|implicit] [--auth USER] [--to ADDR]… [--config <file>]
       mailroom load upload --config <file> [--rule NAME]
  common: [--rate N | --concurrency N] [--count N] [--duration 60s] [--size 10KB | --mix realistic]
          [--watch-topic] [--json] [--report FILE.html] [--allow-remote]

Load-tests a deployment's upload path and prints what it measured (docs/load.md).

smtp      SMTP load on a gateway (or any SMTP server): real MIME messages, each with a unique token.
          --target HOST:PORT      the server (required)
          --tls starttls|implicit TLS after EHLO, or from the first byte (465 style); --ca FILE trusts a private
                                  CA, --tls-insecure accepts any certificate (tests only)
          --auth USER             SMTP AUTH as USER; the password comes from MAILROOM_LOAD_PASSWORD or stdin,
                                  never from a flag
          --to ADDR               a recipient (repeatable); without it, --config gives one address per rule
          --config FILE           the gateway's config: recipients, and the rules' topics and buckets to watch
          --connections N         with --rate: at most N sessions (default 50)
          --from ADDR, --helo NAME  the envelope sender and the EHLO name
upload    The upload path without SMTP: SES-format objects (header block, envelope encryption, multipart above
          the threshold, notification) through the code the delivery workers run, to the rule's bucket, key
          prefix, KMS key and topic: what the bucket, KMS and SNS setup can take.
          --config FILE           the config (or MAILROOM_CONFIG); its gateway.upload settings apply
          --rule NAME             the rule to load (needed when several are enabled)

load shape (one of):
  --rate N          open loop: N messages a second on a schedule that does not wait for replies; latency is
                    also measured from when each was due (corrected for coordinated omission)
  --concurrency N   closed loop: N in flight (default: smtp 20, upload the config's gateway.worker.concurrency)
bounds (always):
  --count N         at most N messages
  --duration T      no message starts after T (30s, 5m; default 60s when neither is given)
  --timeout T       one message may take at most T (default 60s); the run ends at most T after the last one
messages:
  --size S          every message S bytes of MIME (1KB…40MB; default 10KB)
  --mix realistic   90 % 5–50 KB text, 9 % 0.1–2 MB with 1–3 attachments, 1 % 10–40 MB
measuring delivery:
  --watch-topic     a temporary SQS queue subscribed to the rules' topics for the run (removed afterwards,
                    also on Ctrl-C); for rules without a topic the object is looked for (HeadObject)
  --delivery-wait T how long to wait for deliveries after the last message (default 60s)
output:
  live progress on stderr; the final table on stdout, or with --json every figure as one JSON object;
  --report FILE.html   one self-contained page with the charts
safety:
  targets outside this machine need --allow-remote (for upload: AWS itself, or a non-loopback
  AWS_ENDPOINT_URL); the objects written are mail under the rule's prefix like any other

Environment: AWS_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3|_KMS|_SNS|_SQS, the standard AWS credential chain;
MAILROOM_LOAD_PASSWORD for --auth. Exit code: 0 the run completed (its errors are in the output), 1 it could not
start or something it created could not be removed, 2 bad arguments or config, 130 interrupted.`;

export const load: Command = {
  name: 'load',
  summary: 'load-test the upload path: SMTP to a gateway, or uploads in SES format',
  usage,
  async run(args) {
    const [sub, ...rest] = args;
    if (sub !== 'smtp' && sub !== 'upload') throw new UsageError(sub ? `unknown subcommand "${sub}"; use smtp or upload` : 'give smtp or upload');
    // Loaded here, so `mailroom load --help` costs nothing.
    const { parseSmtpOptions, parseUploadOptions } = await import('../../load/options.js');
    const { runLoad } = await import('../../load/run.js');
    const opts = sub === 'smtp' ? parseSmtpOptions(rest) : parseUploadOptions(rest);
    return runLoad(opts, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });
  },
};
