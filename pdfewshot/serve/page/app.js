// The page of `pdfewshot serve`: classify dropped images or the camera's picture, teach a class from files or
// from the camera, correct an answer by teaching its image, list and remove classes, download the classifier.
// Talks only to this server's JSON API; nothing is loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
let health = null;
let token = sessionStorage.getItem("pdfewshot-token");

function show(id, text, isError) {
  const element = $(id);
  element.textContent = text;
  element.classList.toggle("error", Boolean(isError));
}

// A request; one that changes the classifier carries the token, asked for when the server wants one.
async function request(method, path, body, changes) {
  const headers = {};
  if (changes && token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, { method, body, headers });
  if ((response.status === 401 || response.status === 403) && changes) {
    const data = await response.clone().json().catch(() => ({ error: response.statusText }));
    const given = window.prompt(data.error + "\nToken:");
    if (given) {
      token = given;
      sessionStorage.setItem("pdfewshot-token", token);
      return request(method, path, body, changes);
    }
  }
  return response;
}

async function api(method, path, body, changes) {
  const response = await request(method, path, body, changes);
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function formOf(files) {
  const form = new FormData();
  for (const file of files) form.append("images", file, file.name);
  return form;
}

function element(tag, className, text) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined) made.textContent = text;
  return made;
}

async function loadHealth() {
  health = await api("GET", "/health");
  const threshold = health.suggested_reject_below === null ? "no threshold for unknown yet"
    : `unknown below ${health.suggested_reject_below.toFixed(3)} of ${health.reject_score}`;
  const source = health.embedding ? `${health.embedding} (taught into ${health.model})` : health.model;
  $("model").textContent = `${source} · ${health.classes} classes · ${threshold}`;
  $("teach-panel").hidden = !health.can_teach;
  // With no classes there is nothing to classify yet: the page says so and points at teaching.
  const empty = health.classes === 0;
  $("classify-inputs").hidden = empty;
  $("empty").hidden = !empty;
  $("downloads").hidden = empty;
  $("record-controls").hidden = !(stream && health.can_teach);
}

async function refresh() {
  await loadHealth();
  await loadClasses();
  if (stream && !live) liveLoop();
}

async function loadClasses() {
  const classes = await api("GET", "/classes");
  classNames = classes.map((item) => item.name);
  const list = $("classes");
  list.replaceChildren();
  $("class-count").textContent = `(${classes.length})`;
  for (const item of classes) {
    const row = element("li");
    row.dataset.name = item.name;
    row.append(element("span", "name", item.name));
    const count = item.support === null ? "" : `${item.support} image${item.support === 1 ? "" : "s"}`;
    row.append(element("span", "count", count + (item.taught ? " · taught" : "")));
    const thumbs = element("span", "thumbs");
    for (let i = 0; i < Math.min(item.examples, 5); i++) {
      const image = element("img");
      image.alt = `${item.name} example ${i + 1}`;
      image.loading = "lazy";
      image.src = `/classes/${encodeURIComponent(item.name)}/examples/${i}`;
      thumbs.append(image);
    }
    row.append(thumbs);
    if (health && health.can_teach) {
      const remove = element("button", "remove", "Remove");
      remove.type = "button";
      // A page started from an embedding may go back to no classes; a fine-tuned predictor keeps one.
      const last = classes.length === 1 && !health.embedding;
      remove.disabled = last;
      remove.title = last ? "a classifier needs at least one class" : `remove ${item.name}`;
      remove.addEventListener("click", () => removeClass(item.name));
      row.append(remove);
    }
    list.append(row);
  }
}

async function classify(files) {
  if (!files.length) return;
  show("classify-message", `classifying ${files.length} image${files.length === 1 ? "" : "s"}…`);
  const query = new URLSearchParams({ top_k: "3" });
  try {
    const predictions = await api("POST", "/predict?" + query, formOf(files));
    byImage(predictions).forEach((answers, i) => addResult(files[i], answers));
    show("classify-message", "");
  } catch (error) {
    show("classify-message", error.message, true);
  }
}

// One answer in the list, newest first: the image (with its faces boxed), the top classes, and under each
// answer "That is ..." to teach the image to the right class.
function addResult(file, answers) {
  const row = element("li");
  row.dataset.label = answers.map((prediction) => prediction.label).join(",");
  const source = URL.createObjectURL(file);
  const faces = answers.some((prediction) => prediction.box);
  if (faces) row.className = "with-faces";
  row.append(faces ? facesFigure(source, answers) : thumbnail(source, answers[0].image));
  const column = element("div", "answer");
  answers.forEach((prediction, k) => {
    column.append(...answer(prediction, faces ? k + 1 : null));
    if (health.can_teach && prediction.label !== "no face found") column.append(correction(file, prediction));
  });
  row.append(column);
  $("results").prepend(row);
}

// The predictions of one upload stay together: one, or on the face route one for each face found.
function byImage(predictions) {
  const groups = [];
  for (const prediction of predictions) {
    const last = groups[groups.length - 1];
    if (last && prediction.box && last[0].box && last[0].image === prediction.image) last.push(prediction);
    else groups.push([prediction]);
  }
  return groups;
}

function thumbnail(source, name) {
  const image = element("img");
  image.alt = name;
  image.src = source;
  return image;
}

// The photo with a box around each face found, named by the face's label ("unknown" below the threshold).
function facesFigure(source, answers) {
  const frame = element("div", "faces");
  const image = thumbnail(source, answers[0].image);
  frame.append(image);
  image.addEventListener("load", () => {
    answers.forEach((prediction, index) => {
      if (!prediction.box) return;
      const [left, top, right, bottom] = prediction.box;
      const box = element("div", prediction.label === "unknown" ? "face unknown" : "face");
      box.style.left = (100 * left / image.naturalWidth) + "%";
      box.style.top = (100 * top / image.naturalHeight) + "%";
      box.style.width = (100 * (right - left) / image.naturalWidth) + "%";
      box.style.height = (100 * (bottom - top) / image.naturalHeight) + "%";
      box.append(element("span", "", `${index + 1}. ${prediction.label}`));
      frame.append(box);
    });
  });
  return frame;
}

function answer(prediction, number) {
  const parts = [];
  const unknown = prediction.label === "unknown";
  const noFace = prediction.label === "no face found";
  const shown = unknown ? "unknown: none of the classes" : prediction.label;
  const place = number && prediction.box ? `face ${number}: ` : "";
  parts.push(element("div", unknown || noFace ? "label unknown" : "label", place + shown));
  for (const top of prediction.top) {
    const bar = element("div", "bar");
    const fill = element("span");
    fill.style.width = (100 * top.probability).toFixed(1) + "%";
    bar.append(fill, element("em", "", `${top.class} ${(100 * top.probability).toFixed(1)}%`));
    parts.push(bar);
  }
  const rejection = prediction.rejection;
  const note = rejection && rejection.value !== null
    ? `${rejection.score} ${rejection.value.toFixed(3)} (threshold ${rejection.threshold.toFixed(3)})` : "";
  parts.push(element("div", "note", `${prediction.image} ${note}`));
  return parts;
}

let teachFiles = [];

async function teach(event) {
  event.preventDefault();
  const name = $("teach-name").value.trim();
  if (!name) return show("teach-message", "give the class a name", true);
  if (!teachFiles.length) return show("teach-message", "drop or pick 1–5 images of it", true);
  $("teach-button").disabled = true;
  show("teach-message", `teaching ${name}…`);
  try {
    const taught = await api("POST", "/classes/" + encodeURIComponent(name), formOf(teachFiles), true);
    const total = taught.support === null ? "" : ` (now ${taught.support})`;
    const left = taught.skipped && taught.skipped.length
      ? `; no face found in ${taught.skipped.join(", ")}, left out` : "";
    show("teach-message", (taught.new ? `learned ${taught.class} from ${taught.images} images`
      : `added ${taught.images} images to ${taught.class}${total}`) + left);
    teachFiles = [];
    $("teach-chosen").textContent = "Drop 1–5 images of it here, or tap to pick them";
    $("teach-name").value = "";
    await refresh();
  } catch (error) {
    show("teach-message", error.message, true);
  } finally {
    $("teach-button").disabled = false;
  }
}

async function removeClass(name) {
  if (!window.confirm(`Remove the class ${name}?`)) return;
  try {
    await api("DELETE", "/classes/" + encodeURIComponent(name), undefined, true);
    await refresh();
  } catch (error) {
    window.alert(error.message);
  }
}

function chooseTeachFiles(files) {
  teachFiles = Array.from(files);
  $("teach-chosen").textContent = teachFiles.length
    ? `${teachFiles.length} image${teachFiles.length === 1 ? "" : "s"}: ${teachFiles.map((f) => f.name).join(", ")}`
    : "Drop 1–5 images of it here, or tap to pick them";
}

function dropZone(zoneId, inputId, onFiles) {
  const zone = $(zoneId);
  $(inputId).addEventListener("change", (event) => {
    onFiles(Array.from(event.target.files));
    event.target.value = "";  // so that picking the same file again is a change too
  });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    onFiles(Array.from(event.dataTransfer.files));
  });
}


// ----- Corrections: "That is ..." teaches the image (on the face route, the face's part of it) to a class.

function correction(file, prediction) {
  const form = element("form", "correct");
  const id = "correct-" + Math.random().toString(36).slice(2);
  const label = element("label", "", "That is ");
  label.htmlFor = id;
  const select = element("select");
  select.id = id;
  for (const name of classNames) select.append(new Option(name, name));
  select.append(new Option("a new class…", ""));
  const named = prediction.label === "unknown" ? "" : prediction.label;
  select.value = classNames.includes(named) ? named : (classNames[0] || "");
  const newName = element("input");
  newName.type = "text";
  newName.maxLength = 64;
  newName.placeholder = "new class name";
  newName.setAttribute("aria-label", "Name of the new class");
  newName.hidden = select.value !== "";
  select.addEventListener("change", () => { newName.hidden = select.value !== ""; if (!newName.hidden) newName.focus(); });
  const button = element("button", "secondary", "Teach it");
  button.type = "submit";
  const said = element("span", "note");
  said.setAttribute("role", "status");
  form.append(label, select, newName, button, said);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = (select.value || newName.value).trim();
    if (!name) { said.textContent = "give the class a name"; return; }
    button.disabled = true;
    said.textContent = "teaching…";
    try {
      const image = prediction.box ? await faceCrop(file, prediction.box) : file;
      const taught = await api("POST", "/classes/" + encodeURIComponent(name), formOf([image]), true);
      said.textContent = taught.new ? `learned ${taught.class}` : `added to ${taught.class}`;
      await refresh();
    } catch (error) {
      said.textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// The face's box, widened by half on each side (so that the server finds the face again), as a PNG file.
async function faceCrop(file, box) {
  const bitmap = await createImageBitmap(file);
  const [left, top, right, bottom] = box;
  const padX = (right - left) / 2, padY = (bottom - top) / 2;
  const x = Math.max(0, left - padX), y = Math.max(0, top - padY);
  const w = Math.min(bitmap.width, right + padX) - x, h = Math.min(bitmap.height, bottom + padY) - y;
  const canvas = element("canvas");
  canvas.width = Math.round(w);
  canvas.height = Math.round(h);
  canvas.getContext("2d").drawImage(bitmap, x, y, w, h, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  return new File([blob], "face.png", { type: "image/png" });
}

// ----- The camera: its picture, live answers, and recording a class from it.

let stream = null;
let facing = "environment";  // the back camera on phones; "user" is the front one
let live = false;
let lastLive = null;  // the last frame answered live, and its answers
let classNames = [];

async function openCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    show("camera-message", "This browser gives the page no camera (it needs https or localhost); pick files instead.", true);
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: facing }, audio: false });
  } catch (error) {
    stream = null;
    show("camera-message", `No camera: ${error.name === "NotAllowedError" ? "it was refused" : error.message}. ` +
      "Pick or drop files instead.", true);
    return;
  }
  const video = $("video");
  video.srcObject = stream;
  await video.play();
  $("live").hidden = false;
  $("camera-switch").hidden = false;
  $("camera-button").textContent = "Close the camera";
  $("camera-button").setAttribute("aria-pressed", "true");
  show("camera-message", "");
  await loadHealth();
  liveLoop();
}

function closeCamera() {
  if (stream) stream.getTracks().forEach((track) => track.stop());
  stream = null;
  $("video").srcObject = null;
  $("live").hidden = true;
  $("camera-switch").hidden = true;
  $("record-controls").hidden = true;
  $("camera-button").textContent = "Open the camera";
  $("camera-button").setAttribute("aria-pressed", "false");
}

async function switchCamera() {
  facing = facing === "environment" ? "user" : "environment";
  closeCamera();
  await openCamera();
}

// The frame sent: as large as the server needs, not the camera's full size (the embedding's input on its
// shorter side for photographs, which the server crops to a square; 640 px on the longer side for faces).
function frameFile(name) {
  const video = $("video");
  const width = video.videoWidth, height = video.videoHeight;
  if (!width || !height) return Promise.resolve(null);
  const scale = health.faces ? Math.min(1, 640 / Math.max(width, height))
    : Math.min(1, Math.max(health.image_size, 32) / Math.min(width, height));
  const canvas = element("canvas");
  canvas.width = Math.max(1, Math.round(width * scale));
  canvas.height = Math.max(1, Math.round(height * scale));
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob((blob) => resolve(blob && new File([blob], name, { type: "image/jpeg" })),
    "image/jpeg", 0.9));
}

// Classifies the picture again and again while the camera is open, sending the next frame only when the last
// answer is back, so a slow server is never flooded.
async function liveLoop() {
  if (live) return;
  live = true;
  const times = [];
  try {
    while (stream && $("live-toggle").checked && health.classes > 0) {
      const frame = await frameFile("camera.jpg");
      if (!frame) { await new Promise((resolve) => setTimeout(resolve, 100)); continue; }
      try {
        const predictions = await api("POST", "/predict?top_k=3", formOf([frame]));
        showLive(predictions);
        lastLive = { frame, predictions };
        $("keep-frame").disabled = false;
        times.push(performance.now());
        while (times.length > 10) times.shift();
        const rate = times.length > 1 ? (times.length - 1) * 1000 / (times[times.length - 1] - times[0]) : 0;
        $("live-rate").textContent = `${rate.toFixed(1)} answers a second`;
        $("live-rate").dataset.answers = String(Number($("live-rate").dataset.answers || 0) + 1);
      } catch (error) {
        show("camera-message", error.message, true);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  } finally {
    live = false;
  }
}

function showLive(predictions) {
  const column = $("live-answer");
  const faces = predictions.some((prediction) => prediction.box);
  column.replaceChildren(...predictions.flatMap((prediction, k) => answer(prediction, faces ? k + 1 : null)));
  column.dataset.label = predictions.map((prediction) => prediction.label).join(",");
  // Screen readers hear the answer when it changes, not at every frame.
  const said = predictions.length ? "The camera shows: " + column.dataset.label.replaceAll(",", ", ") : "";
  if ($("live-said").textContent !== said) $("live-said").textContent = said;
  const video = $("video"), overlay = $("overlay");
  overlay.width = video.videoWidth;
  overlay.height = video.videoHeight;
  const context = overlay.getContext("2d");
  context.clearRect(0, 0, overlay.width, overlay.height);
  if (!faces) return;
  // Boxes are in the pixels of the frame sent, which keeps the video's proportions.
  const sent = Math.min(1, 640 / Math.max(video.videoWidth, video.videoHeight));
  context.lineWidth = 3;
  context.font = "16px system-ui, sans-serif";
  predictions.forEach((prediction, index) => {
    if (!prediction.box) return;
    const [left, top, right, bottom] = prediction.box.map((value) => value / sent);
    const colour = prediction.label === "unknown" ? "#b45309" : "#2563c9";
    context.strokeStyle = colour;
    context.strokeRect(left, top, right - left, bottom - top);
    const text = `${index + 1}. ${prediction.label}`;
    context.fillStyle = colour;
    context.fillRect(left, bottom, context.measureText(text).width + 8, 20);
    context.fillStyle = "#fff";
    context.fillText(text, left + 4, bottom + 15);
  });
}

// "Hold to record": a few frames a second while held (mouse, touch, or Space/Enter), taught in one request
// when let go; "Take photo": one frame.
const RECORD_EVERY_MS = 250;
let recording = null;

function startRecording() {
  if (recording || !stream) return;
  const name = $("teach-name").value.trim();
  if (!name) { show("teach-message", "give the class a name first", true); return; }
  const limit = health.max_images || 16;
  recording = { name, frames: [], timer: null };
  $("record-button").classList.add("on");
  const take = async () => {
    if (!recording || recording.frames.length >= limit) return;
    const frame = await frameFile(`frame${recording.frames.length}.jpg`);
    if (frame && recording) recording.frames.push(frame);
    if (recording) $("record-count").textContent = `${recording.frames.length} frames`;
  };
  take();
  recording.timer = setInterval(take, RECORD_EVERY_MS);
}

async function stopRecording() {
  if (!recording) return;
  const { name, frames, timer } = recording;
  clearInterval(timer);
  recording = null;
  $("record-button").classList.remove("on");
  await teachFrames(name, frames);
}

async function takePhoto() {
  const name = $("teach-name").value.trim();
  if (!name) { show("teach-message", "give the class a name first", true); return; }
  const frame = await frameFile("photo.jpg");
  if (frame) await teachFrames(name, [frame]);
}

async function teachFrames(name, frames) {
  if (!frames.length) return;
  show("teach-message", `teaching ${name} from ${frames.length} frames…`);
  try {
    const taught = await api("POST", "/classes/" + encodeURIComponent(name), formOf(frames), true);
    const left = taught.skipped && taught.skipped.length ? ` (${taught.skipped.length} with no face left out)` : "";
    show("teach-message", (taught.new ? `learned ${taught.class} from ${taught.images} frames`
      : `added ${taught.images} frames to ${taught.class}`) + left);
    await refresh();
  } catch (error) {
    show("teach-message", error.message, true);
  }
}

// ----- Downloads: fetched with the token when the server has one, then saved.

async function download(event, kind) {
  event.preventDefault();
  show("download-message", "preparing the download…");
  const response = await request("GET", "/download/" + kind, undefined, true);
  if (!response.ok) {
    const data = await response.json().catch(() => ({ error: response.statusText }));
    show("download-message", data.error, true);
    return;
  }
  const name = (response.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
  const link = element("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = name ? name[1] : kind;
  document.body.append(link);
  link.click();
  link.remove();
  show("download-message", `saved ${link.download}`);
}

dropZone("classify-drop", "classify-input", classify);
dropZone("teach-drop", "teach-input", chooseTeachFiles);
$("classify-camera").addEventListener("change", (event) => classify(Array.from(event.target.files)));
$("teach-camera").addEventListener("change", (event) => chooseTeachFiles(event.target.files));
$("teach-form").addEventListener("submit", teach);
$("camera-button").addEventListener("click", () => (stream ? closeCamera() : openCamera()));
$("camera-switch").addEventListener("click", switchCamera);
$("live-toggle").addEventListener("change", () => { if ($("live-toggle").checked && stream) liveLoop(); });
const record = $("record-button");
record.addEventListener("pointerdown", (event) => { event.preventDefault(); startRecording(); });
for (const end of ["pointerup", "pointerleave", "pointercancel"]) record.addEventListener(end, stopRecording);
record.addEventListener("keydown", (event) => {
  if ((event.key === " " || event.key === "Enter") && !event.repeat) { event.preventDefault(); startRecording(); }
});
record.addEventListener("keyup", (event) => { if (event.key === " " || event.key === "Enter") stopRecording(); });
$("photo-button").addEventListener("click", takePhoto);
$("keep-frame").addEventListener("click", () => {
  if (lastLive) addResult(new File([lastLive.frame], `camera ${new Date().toLocaleTimeString()}.jpg`,
    { type: "image/jpeg" }), lastLive.predictions);
});
$("download-predictor").addEventListener("click", (event) => download(event, "predictor"));
$("download-export").addEventListener("click", (event) => download(event, "export"));
loadHealth().then(loadClasses).catch((error) => show("classify-message", error.message, true));
