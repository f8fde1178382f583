// The page of `pdfewshot serve`: classify dropped images, teach a class, list and remove classes.
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

async function api(method, path, body, changes) {
  const headers = {};
  if (changes && token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, { method, body, headers });
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if ((response.status === 401 || response.status === 403) && changes) {
    const given = window.prompt(data.error + "\nToken:");
    if (given) {
      token = given;
      sessionStorage.setItem("pdfewshot-token", token);
      return api(method, path, body, changes);
    }
  }
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
  const threshold = health.suggested_reject_below === null ? "no suggested threshold"
    : `unknown below ${health.suggested_reject_below.toFixed(3)} of ${health.reject_score}`;
  const source = health.embedding ? `${health.embedding} (taught into ${health.model})` : health.model;
  $("model").textContent = `${source} · ${health.classes} classes · ${threshold}`;
  $("teach-panel").hidden = !health.can_teach;
  // With no classes there is nothing to classify yet: the page says so and points at teaching.
  const empty = health.classes === 0;
  $("classify-drop").hidden = empty;
  $("empty").hidden = !empty;
}

async function loadClasses() {
  const classes = await api("GET", "/classes");
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
  if (health && health.suggested_reject_below !== null) query.set("reject_below", "suggested");
  try {
    const predictions = await api("POST", "/predict?" + query, formOf(files));
    const results = $("results");
    byImage(predictions).forEach((answers, i) => {
      const row = element("li");
      row.dataset.label = answers.map((prediction) => prediction.label).join(",");
      const source = URL.createObjectURL(files[i]);
      const faces = answers.some((prediction) => prediction.box);
      if (faces) row.className = "with-faces";
      row.append(faces ? facesFigure(source, answers) : thumbnail(source, answers[0].image));
      const column = element("div", "answer");
      answers.forEach((prediction, k) => column.append(...answer(prediction, faces ? k + 1 : null)));
      row.append(column);
      results.prepend(row);
    });
    show("classify-message", "");
  } catch (error) {
    show("classify-message", error.message, true);
  }
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
    show("teach-message", taught.new ? `learned ${taught.class} from ${taught.images} images`
      : `added ${taught.images} images to ${taught.class}${total}`);
    teachFiles = [];
    $("teach-chosen").textContent = "Drop 1–5 images of it here, or tap to pick them";
    $("teach-name").value = "";
    await loadHealth();
    await loadClasses();
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
    await loadHealth();
    await loadClasses();
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

dropZone("classify-drop", "classify-input", classify);
dropZone("teach-drop", "teach-input", chooseTeachFiles);
$("teach-form").addEventListener("submit", teach);
loadHealth().then(loadClasses).catch((error) => show("classify-message", error.message, true));
