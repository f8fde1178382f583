// face-api.js's own outputs for raw RGB images, which tests/fixtures/face_api_reference.json holds and
// tests/nets/test_faces.py checks the Paddle ports against. Run outside the repository, with node 20:
//   npm install @vladmandic/face-api@1.7.15 @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0
//   node face_api_reference.mjs MODEL_DIR OUT.json IMAGE.rgb:WIDTH:HEIGHT ...
// (each IMAGE.rgb: the image's uint8 RGB rows, as numpy's tofile writes them). tfjs runs on its CPU backend.
import { createRequire } from 'module';
const require = createRequire(import.meta.url);
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
import fs from 'fs';
const tf = faceapi.tf;
await tf.setBackend('cpu'); await tf.ready();
const [modelDir, outPath, ...images] = process.argv.slice(2);
function load(net, name) {
  const manifest = JSON.parse(fs.readFileSync(`${modelDir}/${name}-weights_manifest.json`));
  const buf = fs.readFileSync(`${modelDir}/${manifest[0].paths[0]}`);
  const map = tf.io.decodeWeights(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength), manifest[0].weights);
  net.loadFromWeightMap(map);
}
load(faceapi.nets.tinyFaceDetector, 'tiny_face_detector_model');
load(faceapi.nets.faceLandmark68Net, 'face_landmark_68_model');
load(faceapi.nets.faceRecognitionNet, 'face_recognition_model');
load(faceapi.nets.ssdMobilenetv1, 'ssd_mobilenetv1_model');
const results = [];
for (const spec of images) {
  const [file, w, h] = spec.split(':');
  const data = new Uint8Array(fs.readFileSync(file));
  const img = tf.tensor3d(data, [Number(h), Number(w), 3], 'int32');
  const raw = await faceapi.nets.tinyFaceDetector.forward(img, 416);
  const chipDesc = await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(img);
  const lmRaw = faceapi.nets.faceLandmark68Net.runNet(await faceapi.toNetInput(img));
  const faces = await faceapi.detectAllFaces(img, new faceapi.TinyFaceDetectorOptions()).withFaceLandmarks().withFaceDescriptors();
  const ssd = faceapi.nets.ssdMobilenetv1.forward(img);
  const ssdBoxes = (await ssd).boxes[0], ssdScores = (await ssd).scores[0];
  const ssdFaces = await faceapi.detectAllFaces(img, new faceapi.SsdMobilenetv1Options());
  results.push({
    file,
    ssd_boxes_first_200: Array.from(await ssdBoxes.data()).slice(0, 200), ssd_boxes_sum: (await ssdBoxes.sum().data())[0],
    ssd_scores_first_200: Array.from(await ssdScores.data()).slice(0, 200), ssd_scores_sum: (await ssdScores.sum().data())[0],
    ssd_faces: ssdFaces.map((f) => ({ box: [f.box.x, f.box.y, f.box.width, f.box.height], score: f.score })), raw_detector: Array.from(await raw.data()).slice(0, 200), raw_detector_sum: (await raw.sum().data())[0],
    whole_descriptor: Array.from(chipDesc), whole_landmarks_raw: Array.from(await lmRaw.data()),
    faces: faces.map((f) => ({ box: [f.detection.box.x, f.detection.box.y, f.detection.box.width, f.detection.box.height], score: f.detection.score,
      landmarks: f.landmarks.positions.map((p) => [p.x, p.y]), unshifted: f.unshiftedLandmarks.positions.map((p) => [p.x, p.y]), lmdims: [f.unshiftedLandmarks.imageWidth, f.unshiftedLandmarks.imageHeight], aligned: [f.alignedRect.box.x, f.alignedRect.box.y, f.alignedRect.box.width, f.alignedRect.box.height],
      descriptor: Array.from(f.descriptor) })),
  });
}
fs.writeFileSync(outPath, JSON.stringify(results));
