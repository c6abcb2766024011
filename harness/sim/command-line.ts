// The little shell the simulated real server understands: the driver's command lines are simple
// commands of bare words and single-quoted words, joined by `&&`, with at most a `> file`
// redirection. Anything else ($, `, ", |, ;, \ ...) is refused: the sim never interprets what a
// real shell would, so it cannot hide a quoting mistake of the driver.

export type Token = { word: string } | { op: '&&' | '>' };

export class ShellSyntaxError extends Error {}

const BARE = /[A-Za-z0-9._/:=+@%,_-]/;

export function tokenize(line: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    if (line.startsWith('&&', i)) {
      out.push({ op: '&&' });
      i += 2;
      continue;
    }
    if (c === '>') {
      out.push({ op: '>' });
      i++;
      continue;
    }
    // One word: a run of bare characters and single-quoted strings glued together.
    let word = '';
    let any = false;
    while (i < line.length && line[i] !== ' ' && line[i] !== '\t' && line[i] !== '>' && !line.startsWith('&&', i)) {
      const ch = line[i];
      if (ch === "'") {
        const end = line.indexOf("'", i + 1);
        if (end < 0) throw new ShellSyntaxError('unterminated quote');
        word += line.slice(i + 1, end);
        i = end + 1;
      } else if (ch === '\\' && line[i + 1] === "'") {
        // The `'\''` idiom of shellQuote: an escaped quote between two quoted parts.
        word += "'";
        i += 2;
      } else if (BARE.test(ch)) {
        word += ch;
        i++;
      } else {
        throw new ShellSyntaxError(`unsupported shell syntax ${JSON.stringify(ch)}`);
      }
      any = true;
    }
    if (any) out.push({ word });
  }
  return out;
}

export interface SimpleCommand {
  argv: string[];
  /** `> file` */
  redirect?: string;
}

/** Split into simple commands joined by `&&`. */
export function parseCommandLine(line: string): SimpleCommand[] {
  const tokens = tokenize(line);
  const cmds: SimpleCommand[] = [];
  let cur: SimpleCommand = { argv: [] };
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if ('op' in t && t.op === '&&') {
      if (cur.argv.length === 0) throw new ShellSyntaxError('empty command before &&');
      cmds.push(cur);
      cur = { argv: [] };
    } else if ('op' in t && t.op === '>') {
      const next = tokens[++i];
      if (!next || !('word' in next)) throw new ShellSyntaxError('> without a file');
      cur.redirect = next.word;
    } else if ('word' in t) {
      cur.argv.push(t.word);
    }
  }
  if (cur.argv.length === 0) throw new ShellSyntaxError('empty command');
  cmds.push(cur);
  return cmds;
}
