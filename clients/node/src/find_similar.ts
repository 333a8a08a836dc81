/**
 * Example for CAD-plugin authors: send one image to the designsearch gateway and print the most similar
 * catalogue designs.
 *
 * Usage: node dist/find_similar.js --gateway HOST:PORT [--api-key KEY] [--k 6] IMAGE_FILE
 *   The API key may also come from $DESIGNSEARCH_API_KEY; $DESIGNSEARCH_TLS_CA names a PEM CA bundle for TLS.
 *
 * Output: a header, then one line per match in the machine-parsable form
 *   <rank>\t<design_id>\t<brand>\t<model>\t<year>\t<score with 4 decimals>
 * On a gRPC error: `CODE: details` on stderr and exit status 1.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { connect, describeError, findSimilar, isServiceError } from "./client";

const USAGE = "usage: node dist/find_similar.js --gateway HOST:PORT [--api-key KEY] [--k 6] IMAGE_FILE";

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        gateway: { type: "string" },
        "api-key": { type: "string" },
        k: { type: "string", default: "6" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const k = Number(values.k);
  if (!values.gateway || positionals.length !== 1 || !Number.isInteger(k)) {
    console.error(USAGE);
    return 2;
  }
  const file = positionals[0];
  let image: Buffer;
  try {
    image = readFileSync(file);
  } catch (err) {
    console.error(`cannot read ${file}: ${(err as Error).message}`);
    return 1;
  }

  const client = connect(values.gateway, { apiKey: values["api-key"] });
  try {
    const response = await findSimilar(client, image, k);
    console.log(`# ${file}: ${response.matches.length} similar designs (embedder ${response.embedderVersion}, ` +
      `${(response.timingsMs.total ?? 0).toFixed(0)} ms${response.cacheHit ? ", cached" : ""})`);
    console.log(["rank", "design_id", "brand", "model", "year", "score"].join("\t"));
    response.matches.forEach((match, i) => {
      const d = match.design;
      console.log([i + 1, d?.designId ?? "", d?.brand ?? "", d?.model ?? "", d?.year ?? 0, match.score.toFixed(4)].join("\t"));
    });
    console.log(`# query id (for Dislike): ${response.queryId}`);
    return 0;
  } catch (err) {
    console.error(isServiceError(err) ? describeError(err) : String(err));
    return 1;
  } finally {
    client.close();
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
