// Uploads a file with tus-js-client, stops after the first chunk as a
// dropped connection would, then resumes it with a second client that asks
// the server (HEAD) where to go on from. Prints what happened as JSON.
//
// usage: node resume.mjs <endpoint> <access token> <file> <chunk size>
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import * as tus from 'tus-js-client'

const [endpoint, token, path, chunk] = process.argv.slice(2)
const file = readFileSync(path)
const common = {
  headers: { Authorization: `Bearer ${token}` },
  chunkSize: Number(chunk),
  metadata: { filename: basename(path), filetype: 'image/jpeg' },
  retryDelays: [100, 500],
  storeFingerprintForResuming: false,
}

function first () {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(file, {
      ...common,
      endpoint,
      onChunkComplete (size, accepted) {
        upload.abort(false).then(() => resolve({ url: upload.url, interruptedAt: accepted }))
      },
      onSuccess () { reject(new Error('the first client finished: nothing to resume')) },
      onError: reject,
    })
    upload.start()
  })
}

function resume (url) {
  return new Promise((resolve, reject) => {
    let resumedFrom = -1
    let imageId = ''
    const upload = new tus.Upload(file, {
      ...common,
      uploadUrl: url,
      onBeforeRequest (req) {
        if (req.getMethod() === 'PATCH' && resumedFrom < 0) resumedFrom = Number(req.getHeader('Upload-Offset'))
      },
      onAfterResponse (req, res) {
        if (res.getHeader('Image-Id')) imageId = res.getHeader('Image-Id')
      },
      onSuccess () { resolve({ resumedFrom, imageId }) },
      onError: reject,
    })
    upload.start()
  })
}

try {
  const a = await first()
  const b = await resume(a.url)
  process.stdout.write(JSON.stringify({ ...a, ...b }) + '\n')
} catch (err) {
  process.stderr.write(String(err) + '\n')
  process.exit(1)
}
