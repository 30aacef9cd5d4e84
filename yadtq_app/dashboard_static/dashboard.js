// yadtq dashboard: polls /dashboard/api/state every second and draws what it says.
// Every value from the server is put in the page as text (textContent), never as
// markup: task arguments, results, errors and ids are user data.
"use strict";

const POLL_MS = 1000;
const CHART_SECONDS = 300;
const STATUSES = ["queued", "scheduled", "processing", "retrying", "success", "failed", "cancelled"];
const FINAL = new Set(["success", "failed", "cancelled"]);

const samples = [];          // {t, done, failed}: cluster totals, one per poll
const lastCounts = new Map(); // worker id -> {done, failed}, to sum deltas across restarts
let totals = {done: 0, failed: 0};
let detailId = null;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) tr.appendChild(cell instanceof Node ? cell : el("td", cell));
  return tr;
}

function num(value) { return el("td", value === null || value === undefined ? "" : value, "num"); }

function ago(t) {
  if (typeof t !== "number" || t <= 0) return "";
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 60) return `${s.toFixed(0)} s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

function when(t) { return typeof t === "number" ? new Date(t * 1000).toLocaleTimeString() : ""; }

function json(value) { return JSON.stringify(value === undefined ? null : value, null, 1); }

function replaceBody(table, rows) {
  const body = document.querySelector(`#${table} tbody`);
  body.replaceChildren(...rows);
}

function rowTime(task) {
  const times = [task.finished_at, task.started_at, task.submitted_at, task.next_run_at];
  for (const h of task.history || []) times.push(h.started_at, h.finished_at);
  return Math.max(0, ...times.filter((t) => typeof t === "number"));
}

function taskLink(id) {
  const a = el("a", id, "task-link");
  a.dataset.taskId = id;
  a.addEventListener("click", () => showTask(id));
  return a;
}

function drawWorkers(workers) {
  replaceBody("workers", workers.map((w) => {
    const tr = row([el("td", w.id), el("td", w.alive ? "alive" : "dead", w.alive ? "alive" : "dead"), w.host,
      num(w.pid), (w.partitions || []).join(", "), num(w.tasks_done), num(w.tasks_failed), num(w.in_progress),
      ago(w.last_heartbeat)]);
    tr.dataset.workerId = w.id;
    tr.dataset.state = w.alive ? "alive" : "dead";
    return tr;
  }));
}

function count(workers) {
  for (const w of workers) {
    const before = lastCounts.get(w.id);
    const now = {done: w.tasks_done || 0, failed: w.tasks_failed || 0};
    if (before) {  // a restarted worker counts from 0 again: a drop is not negative work
      totals.done += Math.max(0, now.done - before.done);
      totals.failed += Math.max(0, now.failed - before.failed);
    }
    lastCounts.set(w.id, now);
  }
  samples.push({t: Date.now() / 1000, done: totals.done, failed: totals.failed});
  while (samples.length && samples[0].t < Date.now() / 1000 - CHART_SECONDS - 5) samples.shift();
}

function drawChart() {
  const canvas = document.getElementById("chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = samples[i].t - samples[i - 1].t;
    if (dt <= 0) continue;
    rates.push({t: samples[i].t, done: (samples[i].done - samples[i - 1].done) / dt,
      failed: (samples[i].failed - samples[i - 1].failed) / dt});
  }
  const top = Math.max(1, ...rates.map((r) => r.done + r.failed));
  const now = Date.now() / 1000;
  const x = (t) => w - ((now - t) / CHART_SECONDS) * w;
  const y = (v) => h - 14 - (v / top) * (h - 24);
  ctx.fillStyle = "#5b6472";
  ctx.font = "11px sans-serif";
  ctx.fillText(`${top.toFixed(1)}/s`, 4, 12);
  for (const [key, colour] of [["done", "#15803d"], ["failed", "#b91c1c"]]) {
    ctx.strokeStyle = colour;
    ctx.beginPath();
    rates.forEach((r, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(r.t), y(r[key])));
    ctx.stroke();
  }
}

function drawLag(lag) {
  const entries = Object.entries(lag || {});
  replaceBody("lag", entries.map(([p, n]) => row([num(p), num(n)])));
  return entries.reduce((sum, [, n]) => sum + n, 0);
}

function drawTasks(tasks) {
  replaceBody("tasks", tasks.map((t) => {
    const tr = row([el("td", null), el("td", t.task), el("td", t.status, `status-${t.status}`), num(t.attempts),
      ago(rowTime(t))]);
    tr.firstChild.appendChild(taskLink(t["task-id"]));
    tr.dataset.taskId = t["task-id"];
    tr.dataset.status = t.status;
    return tr;
  }));
}

function drawDead(dead) {
  replaceBody("dead", dead.slice().reverse().map((d) => {
    const button = el("button", "Retry");
    button.type = "button";
    button.disabled = !d["task-id"];
    button.addEventListener("click", () => act(d["task-id"], "retry", button));
    const idCell = el("td", null);
    if (d["task-id"]) idCell.appendChild(taskLink(d["task-id"]));
    const tr = row([idCell, d.task || "", d.reason || "", el("td", null), ago(d.at), el("td", null)]);
    const error = typeof d.error === "string" ? d.error : (d.error && (d.error.message || json(d.error)));
    tr.children[3].appendChild(el("pre", error || ""));
    tr.lastChild.appendChild(button);
    tr.dataset.taskId = d["task-id"] || "";
    return tr;
  }));
}

async function act(id, verb, button) {
  if (!id) return;
  if (button) button.disabled = true;
  const note = document.getElementById("detail-note");
  try {
    const r = await fetch(`/tasks/${encodeURIComponent(id)}/${verb}`, {method: "POST"});
    const body = await r.json().catch(() => ({}));
    note.textContent = r.ok ? `${verb} requested` : `${verb}: ${body.error || r.status}`;
  } catch (e) {
    note.textContent = `${verb}: ${e}`;
  } finally {
    if (button) button.disabled = false;
  }
  if (detailId === id) showTask(id);
}

async function showTask(id) {
  if (detailId !== id) document.getElementById("detail-note").textContent = "";
  detailId = id;
  const section = document.getElementById("detail");
  section.hidden = false;
  document.getElementById("detail-id").textContent = id;
  const r = await fetch(`/tasks/${encodeURIComponent(id)}`).catch(() => null);
  const body = r ? await r.json().catch(() => ({})) : {error: "no answer"};
  if (detailId !== id) return;
  const fields = document.getElementById("detail-fields");
  if (!r || !r.ok) {
    fields.replaceChildren(el("dt", "error"), el("dd", body.error || (r && r.status)));
    replaceBody("history", []);
    section.dataset.status = "";
    return;
  }
  section.dataset.status = body.status;
  const items = [["task", body.task], ["status", body.status], ["args", json(body.args)],
    ["kwargs", json(body.kwargs)], ["result", json(body.result)], ["attempts", body.attempts],
    ["retries", `${body.retries} of ${body.max_retries ?? "?"}`], ["submitted", when(body.submitted_at)],
    ["started", when(body.started_at)], ["finished", when(body.finished_at)]];
  if (body.error) items.push(["error", `${body.error.type}: ${body.error.message}`],
    ["traceback", body.error.traceback || ""]);
  fields.replaceChildren(...items.flatMap(([k, v]) => {
    const dd = el("dd", null);
    dd.appendChild(el("pre", v ?? ""));
    dd.dataset.field = k;
    return [el("dt", k), dd];
  }));
  replaceBody("history", (body.history || []).map((h) => row([num(h.attempt), h.worker || "", el("td", h.status,
    `status-${h.status}`), when(h.started_at), when(h.finished_at),
    h.error ? `${h.error.type}: ${h.error.message}` : ""])));
  document.getElementById("cancel-button").disabled = FINAL.has(body.status);
  document.getElementById("retry-button").disabled = !["failed", "cancelled"].includes(body.status);
}

async function poll() {
  const status = document.getElementById("status-filter").value;
  const conn = document.getElementById("conn");
  try {
    const r = await fetch(`/dashboard/api/state?limit=50${status ? `&status=${status}` : ""}`,
      {cache: "no-store"});
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const state = await r.json();
    conn.textContent = "live";
    conn.className = "conn live";
    drawWorkers(state.workers);
    count(state.workers);
    const queued = drawLag(state.lag);
    drawTasks(state.tasks);
    if (state.dead_letters_known) drawDead(state.dead_letters);
    const alive = state.workers.filter((w) => w.alive).length;
    document.getElementById("summary").textContent =
      `${alive} of ${state.workers.length} workers alive · ${queued} queued`;
    if (detailId && !document.getElementById("detail").hidden) showTask(detailId);
  } catch (e) {
    conn.textContent = "reconnecting…";
    conn.className = "conn down";
  }
  drawChart();
  setTimeout(poll, POLL_MS);
}

function start() {
  const filter = document.getElementById("status-filter");
  for (const s of STATUSES) filter.appendChild(el("option", s)).value = s;
  const find = () => {
    const id = document.getElementById("search").value.trim();
    if (id) showTask(id);
  };
  document.getElementById("search-button").addEventListener("click", find);
  document.getElementById("search").addEventListener("keydown", (e) => { if (e.key === "Enter") find(); });
  document.getElementById("cancel-button").addEventListener("click", (e) => act(detailId, "cancel", e.target));
  document.getElementById("retry-button").addEventListener("click", (e) => act(detailId, "retry", e.target));
  document.getElementById("close-button").addEventListener("click", () => {
    detailId = null;
    document.getElementById("detail").hidden = true;
  });
  poll();
}

document.addEventListener("DOMContentLoaded", start);
