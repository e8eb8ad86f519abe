// The facesearch web page: a thin client of the public HTTP API (the same calls as curl).

const $ = (selector) => document.querySelector(selector);
const POLL_MS = 400;
const FINISHED = new Set(["succeeded", "partial", "failed", "cancelled"]);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

// --- the API key ---------------------------------------------------------------------------
// Asked for once, kept in sessionStorage: it lasts while this tab is open, for this server only.

const KEY_STORAGE = "facesearch.apiKey";
const RATE_LIMIT_RETRIES = 3;

class AuthError extends Error {}

const storedKey = () => sessionStorage.getItem(KEY_STORAGE);

// What may be shown of a key: its prefix (fsk_ and 8 characters), never the secret part.
const keyPrefix = (key) => key.split("_").slice(0, 2).join("_");

function lock(message = "", isError = false) {
  sessionStorage.removeItem(KEY_STORAGE);
  clearResults();
  $("#app").hidden = true;
  $("#tabs").hidden = true;
  $("#key-state").hidden = true;
  $("#key-panel").hidden = false;
  const status = $("#key-status");
  status.textContent = message;
  status.classList.toggle("error", isError);
  $("#key-input").value = "";
  $("#key-input").focus();
}

function unlock(key) {
  sessionStorage.setItem(KEY_STORAGE, key);
  $("#key-panel").hidden = true;
  $("#key-status").textContent = "";
  $("#key-prefix").textContent = `${keyPrefix(key)}…`;
  $("#key-state").hidden = false;
  $("#tabs").hidden = false;
  $("#app").hidden = false;
  showTab();
}

// Every call to the API goes through here: it carries the key, and a refused key (401)
// brings the key form back.
async function authorizedFetch(path, options = {}) {
  const key = storedKey();
  if (!key) {
    lock("Enter an API key to use this page.");
    throw new AuthError("No API key.");
  }
  const headers = new Headers(options.headers);
  headers.set("Authorization", `Bearer ${key}`);
  let response = await fetch(path, { ...options, headers });
  // Past the key's rate limit (a burst of thumbnails, say): wait as asked, a few times.
  for (let retry = 0; response.status === 429 && retry < RATE_LIMIT_RETRIES; retry += 1) {
    const seconds = Number(response.headers.get("Retry-After")) || 1;
    await sleep(Math.min(seconds, 30) * 1000);
    response = await fetch(path, { ...options, headers });
  }
  if (response.status === 401) {
    const message = await errorMessage(response);
    if (key === storedKey()) lock(`The API key was refused: ${message} Enter a valid key.`, true);
    throw new AuthError(message);
  }
  return response;
}

async function errorMessage(response) {
  const json = response.headers.get("content-type")?.includes("json");
  const body = json ? await response.json().catch(() => null) : null;
  const text = body?.error?.message || `${response.status} ${response.statusText}`;
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

async function api(path, options = {}) {
  const response = await authorizedFetch(path, options);
  if (response.status === 403) {
    const message = await errorMessage(response);
    throw new Error(
      `This API key may not do that: ${message} To use another key, choose "Forget key" and enter it.`);
  }
  if (!response.ok) throw new Error(await errorMessage(response));
  return response.headers.get("content-type")?.includes("json") ? response.json() : null;
}

async function onKeySubmit(event) {
  event.preventDefault();
  const key = $("#key-input").value.trim().replace(/^Bearer\s+/i, "");
  if (!key) return;
  const button = $("#key-submit");
  const status = $("#key-status");
  button.disabled = true;
  status.classList.remove("error");
  status.textContent = "Checking the key…";
  try {
    // Any key may list names (the lowest scope, search, allows it): a cheap check.
    const response = await fetch("/v1/labels?limit=1", { headers: { Authorization: `Bearer ${key}` } });
    if (response.ok) {
      unlock(key);
      return;
    }
    const message = await errorMessage(response);
    status.textContent = response.status === 401 ? `This key was refused: ${message}` : `The key could not be checked: ${message}`;
    status.classList.add("error");
  } catch (error) {
    status.textContent = `The key could not be checked: ${error.message}`;
    status.classList.add("error");
  } finally {
    button.disabled = false;
  }
}

// --- images that need the key ----------------------------------------------------------------
// An <img src> cannot send a header: the bytes are fetched with the key and shown through
// blob: URLs, each owned by a group ("query", "search", "gallery") and revoked when that
// group's images are replaced.

const imageGroups = new Map(); // group -> { generation, urls: Set }

function imageGroup(name) {
  if (!imageGroups.has(name)) imageGroups.set(name, { generation: 0, urls: new Set() });
  return imageGroups.get(name);
}

function releaseImages(name) {
  const group = imageGroup(name);
  for (const url of group.urls) URL.revokeObjectURL(url);
  group.urls.clear();
  group.generation += 1; // images still loading for the old generation are dropped
}

function showBlob(img, blob, name) {
  const url = URL.createObjectURL(blob);
  imageGroup(name).urls.add(url);
  img.src = url;
}

async function loadImage(img) {
  const { path, group: name } = img.dataset;
  const generation = imageGroup(name).generation;
  try {
    const response = await authorizedFetch(path);
    if (!response.ok) throw new Error(await errorMessage(response));
    const blob = await response.blob();
    if (generation !== imageGroup(name).generation) return; // replaced meanwhile
    showBlob(img, blob, name);
  } catch (error) {
    img.classList.add("broken");
    img.title = `Could not load the image: ${error.message}`;
  }
}

// Thumbnails are fetched once they come near the screen, as loading="lazy" would.
const nearScreen = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    nearScreen.unobserve(entry.target);
    loadImage(entry.target);
  }
}, { rootMargin: "300px" });

function keyedImage(path, group, attributes = {}) {
  const img = el("img", { ...attributes, "data-path": path, "data-group": group });
  if (path) nearScreen.observe(img);
  return img;
}

function clearResults() {
  for (const name of imageGroups.keys()) releaseImages(name);
  $("#faces").replaceChildren();
  $("#query-frame").replaceChildren();
  $("#search-status").textContent = "";
  $("#add-job").replaceChildren();
  $("#archive-job").replaceChildren();
  $("#labels").replaceChildren();
  $("#gallery-images").replaceChildren();
  $("#gallery-title").textContent = "";
  $("#labels-more").hidden = true;
  $("#gallery-more").hidden = true;
}

// --- jobs ------------------------------------------------------------------------------------

async function waitForJob(jobId, onProgress = () => {}) {
  for (;;) {
    const job = await api(`/v1/jobs/${jobId}`);
    onProgress(job);
    if (FINISHED.has(job.status)) return job;
    await sleep(POLL_MS);
  }
}

// --- tabs --------------------------------------------------------------------------------

function showTab() {
  const name = (location.hash || "#search").slice(1);
  for (const section of document.querySelectorAll("section.tab")) section.hidden = section.id !== name;
  for (const link of document.querySelectorAll("nav a[data-tab]")) {
    link.classList.toggle("active", link.dataset.tab === name);
  }
  if (name === "gallery" && !$("#labels").childElementCount) loadLabels(true).catch(reportGalleryError);
}

// Dropping a file on a drop zone fills its input.
function wireDropZones() {
  for (const zone of document.querySelectorAll(".drop")) {
    const input = zone.querySelector("input[type=file]");
    const caption = zone.querySelector("span");
    const show = () => {
      const names = [...input.files].map((f) => f.name);
      if (names.length) caption.textContent = names.length > 3 ? `${names.length} files` : names.join(", ");
    };
    input.addEventListener("change", show);
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      input.files = event.dataTransfer.files;
      show();
    });
  }
}

// --- search --------------------------------------------------------------------------------

function setStatus(text, isError = false) {
  const status = $("#search-status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

// The query as the server stored it (the boxes are in its coordinates); the picked file if
// that cannot be read.
async function drawQuery(search, file) {
  const { width, height } = search.query;
  const frame = $("#query-frame");
  releaseImages("query");
  const generation = imageGroup("query").generation;
  const img = el("img", { alt: "query photo" });
  let blob = file;
  try {
    const response = await authorizedFetch(search.query.image_url);
    if (response.ok) blob = await response.blob();
  } catch (error) {
    if (error instanceof AuthError) throw error;
  }
  if (generation !== imageGroup("query").generation) return false; // replaced, or key forgotten
  showBlob(img, blob, "query");
  frame.replaceChildren(img);
  const faces = search.faces;
  faces.forEach((face, i) => {
    const b = face.box;
    const box = el("div", { class: "box" }, el("span", { text: String(i + 1) }));
    // Percentages keep the boxes on the faces whatever size the image is shown at.
    Object.assign(box.style, {
      left: `${(100 * b.x) / width}%`, top: `${(100 * b.y) / height}%`,
      width: `${(100 * b.width) / width}%`, height: `${(100 * b.height) / height}%`,
    });
    frame.append(box);
  });
  return true;
}

// The words for each same-person verdict (core/verdict.py): probability >= 0.99 is "same",
// <= 0.01 "different", between "uncertain". A model without a calibration has none.
const VERDICT_WORDS = { same: "same person", uncertain: "uncertain", different: "different person" };

function verdictLine(match) {
  const verdict = match.same_person?.verdict;
  if (!verdict) return el("span", { class: "verdict", text: "no verdict (uncalibrated model)" });
  const p = match.same_person.probability;
  const percent = (100 * p).toFixed(p >= 0.995 || p <= 0.005 ? 2 : 0); // 99.97%, not 100%
  return el("span", { class: `verdict ${verdict}`, text: `${VERDICT_WORDS[verdict]} · ${percent}%` });
}

function matchCard(match) {
  return el("figure", { class: "match", "data-label": match.label ?? "", "data-verdict": match.same_person?.verdict ?? "" },
    keyedImage(match.image_url ?? "", "search", { alt: match.label ?? "unlabelled" }),
    el("div", {},
      el("strong", { text: match.label ?? "(no label)" }), el("br"),
      verdictLine(match), el("br"),
      el("span", { class: "score", text: `#${match.rank} · score ${match.score.toFixed(3)}` })));
}

function drawFaces(faces) {
  const list = $("#faces");
  list.replaceChildren();
  releaseImages("search");
  faces.forEach((face, i) => {
    const matches = [...face.matches].sort((a, b) => b.score - a.score);
    list.append(el("div", { class: "face" },
      el("h3", { text: `Face ${i + 1} · detector confidence ${face.confidence.toFixed(3)}` }),
      // The search's own words when no match is the same person, or none is left.
      face.message ? el("p", { class: "status no-one", text: face.message }) : "",
      matches.length ? el("div", { class: "thumbs" }, ...matches.map(matchCard)) : ""));
  });
}

async function onSearch(event) {
  event.preventDefault();
  const file = $("#search-file").files[0];
  if (!file) return;
  const button = $("#search-submit");
  button.disabled = true;
  $("#faces").replaceChildren();
  $("#query-frame").replaceChildren();
  releaseImages("search");
  releaseImages("query");
  try {
    setStatus("Uploading…");
    const form = new FormData();
    form.append("file", file);
    form.append("top_k", $("#search-topk").value || "10");
    const minProbability = $("#search-minp").value;
    if (minProbability) form.append("min_probability", minProbability);
    const created = await api("/v1/searches", { method: "POST", body: form });
    setStatus("Searching…");
    const job = await waitForJob(created.job_id);
    const search = await api(created.search_url);
    if (job.status !== "succeeded") {
      setStatus(`The search failed: ${search.error || job.error}`, true);
      return;
    }
    if (!(await drawQuery(search, file))) return;
    drawFaces(search.faces);
    const count = search.faces.length;
    setStatus(`${count} face${count === 1 ? "" : "s"} found.`);
  } catch (error) {
    if (!(error instanceof AuthError)) setStatus(error.message, true);
  } finally {
    button.disabled = false;
  }
}

// --- jobs with progress (add photos, archives) ----------------------------------------------

function renderJob(container, job) {
  const p = job.progress;
  const processed = p.done + p.failed + p.skipped;
  const rate = p.images_per_s ? ` · ${p.images_per_s.toFixed(1)} images/s` : "";
  const eta = p.eta_s != null ? ` · about ${Math.ceil(p.eta_s)} s left` : "";
  const total = p.total_known === false ? `${p.total}+` : `${p.total}`;
  container.replaceChildren(
    el("p", {}, el("strong", { text: job.status }),
      ` · ${processed} of ${total} processed · ${p.done} added, ${p.skipped} already there, ${p.failed} failed${rate}${eta}`),
    el("progress", { max: String(Math.max(p.total, 1)), value: String(processed) }));
  if (job.error) container.append(el("p", { class: "error", text: job.error }));
  const failures = (job.items || []).filter((item) => item.status === "failed").slice(0, 10);
  if (failures.length) {
    container.append(el("ul", {}, ...failures.map((item) => el("li", { text: `${item.name}: ${item.error}` }))));
  }
}

async function submitJob(container, path, form) {
  container.replaceChildren(el("p", { text: "Uploading…" }));
  try {
    const created = await api(path, { method: "POST", body: form });
    await waitForJob(created.job_id, (job) => renderJob(container, job));
  } catch (error) {
    if (!(error instanceof AuthError)) container.replaceChildren(el("p", { class: "error", text: error.message }));
  }
}

function onAdd(event) {
  event.preventDefault();
  const form = new FormData();
  for (const file of $("#add-files").files) form.append("file", file);
  const label = $("#add-label").value.trim();
  if (label) form.append("label", label);
  submitJob($("#add-job"), "/v1/images", form);
}

function onArchive(event) {
  event.preventDefault();
  const form = new FormData();
  form.append("label_from", $("#archive-label-from").value);
  form.append("file", $("#archive-file").files[0]);
  submitJob($("#archive-job"), "/v1/archives", form);
}

// --- gallery ---------------------------------------------------------------------------------

let labelsCursor = null;
let imagesCursor = null;
let currentLabel = null;

function reportGalleryError(error) {
  if (error instanceof AuthError) return;
  $("#gallery-title").textContent = error.message;
  $("#gallery-title").classList.add("error");
}

async function loadLabels(reset) {
  if (reset) { $("#labels").replaceChildren(); labelsCursor = null; }
  const params = new URLSearchParams({ limit: "100" });
  const prefix = $("#label-prefix").value.trim();
  if (prefix) params.set("prefix", prefix);
  if (labelsCursor) params.set("cursor", labelsCursor);
  const page = await api(`/v1/labels?${params}`);
  for (const { label, images } of page.items) {
    const item = el("li", { "data-label": label }, label, " ", el("small", { text: `(${images})` }));
    item.addEventListener("click", () => loadImages(label, true).catch(reportGalleryError));
    $("#labels").append(item);
  }
  labelsCursor = page.next_cursor;
  $("#labels-more").hidden = !labelsCursor;
}

async function loadImages(label, reset) {
  if (reset) {
    currentLabel = label;
    imagesCursor = null;
    $("#gallery-images").replaceChildren();
    releaseImages("gallery");
    $("#gallery-title").textContent = label;
    $("#gallery-title").classList.remove("error");
    for (const li of $("#labels").children) li.classList.toggle("active", li.dataset.label === label);
  }
  const params = new URLSearchParams({ label: currentLabel, limit: "48" });
  if (imagesCursor) params.set("cursor", imagesCursor);
  const page = await api(`/v1/images?${params}`);
  for (const image of page.items) {
    $("#gallery-images").append(el("figure", { class: "thumb" },
      keyedImage(image.image_url, "gallery", { alt: image.filename ?? "" }),
      el("div", { text: `${image.faces.length} face(s) · ${image.status}` })));
  }
  imagesCursor = page.next_cursor;
  $("#gallery-more").hidden = !imagesCursor;
}

// --- start -----------------------------------------------------------------------------------

window.addEventListener("hashchange", showTab);
wireDropZones();
$("#search-form").addEventListener("submit", onSearch);
$("#add-form").addEventListener("submit", onAdd);
$("#archive-form").addEventListener("submit", onArchive);
$("#label-filter").addEventListener("submit", (event) => {
  event.preventDefault();
  loadLabels(true).catch(reportGalleryError);
});
$("#labels-more").addEventListener("click", () => loadLabels(false).catch(reportGalleryError));
$("#gallery-more").addEventListener("click", () => loadImages(currentLabel, false).catch(reportGalleryError));
$("#key-form").addEventListener("submit", onKeySubmit);
$("#key-forget").addEventListener("click", () => lock("The key was forgotten. Enter a key to go on."));
if (storedKey()) unlock(storedKey());
else lock();
