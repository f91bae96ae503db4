/**
 * Splits shell text (a README's sh block) into commands of words, as sh would for the plain lines
 * documentation uses: single and double quotes, `\`-newline continuations, `#` comments; `$(…)`
 * and variables stay literal. Throws when a quote is never closed.
 */
export function shellCommands(text: string): string[][] {
  const commands: string[][] = [];
  let words: string[] = [];
  let word: string | undefined;
  let quote: "'" | '"' | undefined;
  const endWord = () => {
    if (word !== undefined) words.push(word);
    word = undefined;
  };
  const endCommand = () => {
    endWord();
    if (words.length > 0) commands.push(words);
    words = [];
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (quote === '"' && c === "\\" && i + 1 < text.length) word += text[++i]!;
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= "";
    } else if (c === "\\" && text[i + 1] === "\n") {
      i++;
      endWord();
    } else if (c === "#" && word === undefined) {
      while (i + 1 < text.length && text[i + 1] !== "\n") i++;
    } else if (c === "\n") {
      endCommand();
    } else if (c === " " || c === "\t") {
      endWord();
    } else {
      word = (word ?? "") + c;
    }
  }
  if (quote !== undefined) throw new Error("a quote in the sh block is never closed");
  endCommand();
  return commands;
}
