// Reading one entry of a package (a ZIP, docs/package-format.md) in the browser, with no
// library: the central directory says where each entry is and how it is compressed (stored, or
// deflated, which DecompressionStream inflates). Used for an erasure's summary and receipt.

const END_SIGNATURE = 0x06054b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_HEADER_SIZE = 30;
const END_SIZE = 22;
const MAX_COMMENT = 0xffff;
const STORED = 0;
const DEFLATED = 8;

async function bytes(blob, start, end) {
  return new DataView(await blob.slice(start, end).arrayBuffer());
}

// Where the central directory is and how many entries it has, from the end record.
async function centralDirectory(blob) {
  const from = Math.max(0, blob.size - END_SIZE - MAX_COMMENT);
  const tail = await bytes(blob, from, blob.size);
  for (let at = tail.byteLength - END_SIZE; at >= 0; at--) {
    if (tail.getUint32(at, true) === END_SIGNATURE) {
      return {
        entries: tail.getUint16(at + 10, true),
        size: tail.getUint32(at + 12, true),
        offset: tail.getUint32(at + 16, true),
      };
    }
  }
  throw new Error("The package is not a ZIP file.");
}

// The text of the entry `name`, or null when the package has no such entry.
export async function readEntry(blob, name) {
  const { entries, size, offset } = await centralDirectory(blob);
  const directory = await bytes(blob, offset, offset + size);
  const decoder = new TextDecoder();
  let at = 0;
  for (let index = 0; index < entries; index++) {
    if (directory.getUint32(at, true) !== CENTRAL_SIGNATURE) break;
    const method = directory.getUint16(at + 10, true);
    const compressed = directory.getUint32(at + 20, true);
    const nameLength = directory.getUint16(at + 28, true);
    const extraLength = directory.getUint16(at + 30, true);
    const commentLength = directory.getUint16(at + 32, true);
    const local = directory.getUint32(at + 42, true);
    const entryName = decoder.decode(
      new Uint8Array(directory.buffer, directory.byteOffset + at + 46, nameLength),
    );
    if (entryName === name) return decoder.decode(await entryBytes(blob, local, method, compressed));
    at += 46 + nameLength + extraLength + commentLength;
  }
  return null;
}

async function entryBytes(blob, local, method, compressed) {
  const header = await bytes(blob, local, local + LOCAL_HEADER_SIZE);
  const start = local + LOCAL_HEADER_SIZE + header.getUint16(26, true) + header.getUint16(28, true);
  const data = blob.slice(start, start + compressed);
  if (method === STORED) return data.arrayBuffer();
  if (method !== DEFLATED) throw new Error(`The package's entry is compressed by method ${method}.`);
  const inflated = data.stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Response(inflated).arrayBuffer();
}
