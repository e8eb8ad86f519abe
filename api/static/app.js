// The facesearch web page: a thin client of the public HTTP API (the same calls as curl).

const $ = (selector) => document.querySelector(selector);
const POLL_MS = 400;
const FINISHED = new Set(["succeeded", "partial", "failed", "cancelled"]);

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

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    throw new Error(body?.error?.message || `${response.status} ${response.statusText}`);
  }
  return body;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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
  if (name === "gallery" && !$("#labels").childElementCount) loadLabels(true);
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

function drawQuery(file, faces, width, height) {
  const frame = $("#query-frame");
  frame.replaceChildren();
  const img = el("img", { src: URL.createObjectURL(file), alt: "query photo" });
  frame.append(img);
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
}

function matchCard(match) {
  return el("figure", { class: "match", "data-label": match.label ?? "" },
    el("img", { src: match.image_url ?? "", alt: match.label ?? "unlabelled", loading: "lazy" }),
    el("div", {},
      el("strong", { text: match.label ?? "(no label)" }), el("br"),
      el("span", { class: "score", text: `#${match.rank} · score ${match.score.toFixed(3)}` })));
}

function drawFaces(faces) {
  const list = $("#faces");
  list.replaceChildren();
  faces.forEach((face, i) => {
    const matches = [...face.matches].sort((a, b) => b.score - a.score);
    list.append(el("div", { class: "face" },
      el("h3", { text: `Face ${i + 1} · detector confidence ${face.confidence.toFixed(3)}` }),
      matches.length
        ? el("div", { class: "thumbs" }, ...matches.map(matchCard))
        : el("p", { class: "status", text: "No match in the gallery yet." })));
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
  try {
    setStatus("Uploading…");
    const form = new FormData();
    form.append("file", file);
    form.append("top_k", $("#search-topk").value || "10");
    const created = await api("/v1/searches", { method: "POST", body: form });
    setStatus("Searching…");
    const job = await waitForJob(created.job_id);
    const search = await api(created.search_url);
    if (job.status !== "succeeded") {
      setStatus(`The search failed: ${search.error || job.error}`, true);
      return;
    }
    const count = search.faces.length;
    setStatus(`${count} face${count === 1 ? "" : "s"} found.`);
    drawQuery(file, search.faces, search.query.width, search.query.height);
    drawFaces(search.faces);
  } catch (error) {
    setStatus(error.message, true);
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
    container.replaceChildren(el("p", { class: "error", text: error.message }));
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

async function loadLabels(reset) {
  if (reset) { $("#labels").replaceChildren(); labelsCursor = null; }
  const params = new URLSearchParams({ limit: "100" });
  const prefix = $("#label-prefix").value.trim();
  if (prefix) params.set("prefix", prefix);
  if (labelsCursor) params.set("cursor", labelsCursor);
  const page = await api(`/v1/labels?${params}`);
  for (const { label, images } of page.items) {
    const item = el("li", { "data-label": label }, label, " ", el("small", { text: `(${images})` }));
    item.addEventListener("click", () => loadImages(label, true));
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
    $("#gallery-title").textContent = label;
    for (const li of $("#labels").children) li.classList.toggle("active", li.dataset.label === label);
  }
  const params = new URLSearchParams({ label: currentLabel, limit: "48" });
  if (imagesCursor) params.set("cursor", imagesCursor);
  const page = await api(`/v1/images?${params}`);
  for (const image of page.items) {
    $("#gallery-images").append(el("figure", { class: "thumb" },
      el("img", { src: image.image_url, alt: image.filename ?? "", loading: "lazy" }),
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
$("#label-filter").addEventListener("submit", (event) => { event.preventDefault(); loadLabels(true); });
$("#labels-more").addEventListener("click", () => loadLabels(false));
$("#gallery-more").addEventListener("click", () => loadImages(currentLabel, false));
showTab();
