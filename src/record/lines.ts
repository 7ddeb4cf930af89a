/**
 * Splits a byte stream into lines without ever holding more than `maxBytes` of one line.
 *
 * `readline` buffers a whole line before its caller can look at its length: a recording with a
 * 560 MiB line (or `/dev/zero`, one endless line) grew the buffer until V8 threw `RangeError:
 * Invalid string length`. Here a line that outgrows the limit is dropped as it streams by and
 * reported as `{ tooLong }` once its newline comes (or the input ends), so memory stays at the
 * limit plus one read chunk whatever the input.
 */

export type SplitLine = { text: string } | { tooLong: number };

/**
 * Lines of `input` (LF or CRLF; a last line without newline counts). `stopped` is checked on
 * every chunk, so an endless over-long line still ends when the caller is told to stop.
 */
export async function* boundedLines(input: AsyncIterable<Buffer>, maxBytes: number, stopped: () => boolean = () => false): AsyncGenerator<SplitLine> {
  let parts: Buffer[] = [];
  let held = 0;
  /** Bytes of the current line dropped so far; > 0 while skipping an over-long line. */
  let dropped = 0;
  const finish = (piece: Buffer): SplitLine => {
    let out: SplitLine;
    if (dropped > 0 || held + piece.length > maxBytes) out = { tooLong: dropped + held + piece.length };
    else {
      const bytes = parts.length === 0 ? piece : Buffer.concat([...parts, piece]);
      const end = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.length - 1 : bytes.length;
      out = { text: bytes.toString('utf8', 0, end) };
    }
    parts = [];
    held = 0;
    dropped = 0;
    return out;
  };
  for await (const chunk of input) {
    if (stopped()) return;
    let start = 0;
    for (let nl = chunk.indexOf(0x0a, start); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      yield finish(chunk.subarray(start, nl));
      start = nl + 1;
      if (stopped()) return;
    }
    const rest = chunk.subarray(start);
    if (rest.length === 0) continue;
    if (dropped > 0) dropped += rest.length;
    else if (held + rest.length > maxBytes) {
      // Over the limit: let go of what was held and only count from here on.
      dropped = held + rest.length;
      parts = [];
      held = 0;
    } else {
      parts.push(rest);
      held += rest.length;
    }
  }
  if (dropped > 0 || held > 0) yield finish(Buffer.alloc(0));
}
