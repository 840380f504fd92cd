// The models and jobs page: versions with their figures and which one scores, jobs with their progress and log
// (polled), and, for an admin session, making a version score and starting a training. `el`, `utc` and `send`
// come from common.js.
"use strict";

const data = document.getElementById("models-data");
const api = data.dataset.api;
const canAdmin = Boolean(data.dataset.canAdmin);
const opened = new Set();  // jobs whose log the operator opened: kept open across refreshes

function figures(values) {
  if (!values) return "";
  return Object.entries(values).filter(([, v]) => typeof v !== "object")
    .map(([k, v]) => `${k}: ${typeof v === "number" ? Number(v.toPrecision(4)) : v}`).join(", ");
}

async function act(url, body) {
  const [ok, answer] = await send("POST", url, body);
  document.getElementById("models-error").textContent = ok ? "" : answer?.detail ?? "refused";
  if (ok) await refresh();
}

function versionRow(v, newer) {
  const actions = [];
  if (canAdmin && !v.named) {
    const button = el("button", { type: "button", class: "score" }, newer ? "Promote" : "Roll back");
    button.addEventListener("click", () => act(`${api}/models/${encodeURIComponent(v.version)}/score`, {}));
    actions.push(button);
  }
  return el("tr", { "data-version": v.version, class: v.named ? "named" : "" },
    el("td", {}, v.version), el("td", {}, v.created ?? ""), el("td", {}, figures(v.evaluation)),
    el("td", {}, figures(v.judgement)), el("td", { class: "is-named" }, v.named ? "yes" : ""),
    el("td", { class: "cells-scoring" }, String(v.cells_scoring)), el("td", {}, ...actions));
}

function jobRow(job) {
  const details = el("details", { "data-job": job.id }, el("summary", {}, job.log.at(-1) ?? ""),
    el("pre", { class: "job-log" }, job.log.join("\n")));
  details.open = opened.has(job.id);
  details.addEventListener("toggle", () => (details.open ? opened.add(job.id) : opened.delete(job.id)));
  return el("tr", { "data-job": job.id, "data-state": job.state },
    el("td", {}, job.id), el("td", {}, job.kind), el("td", {}, job.reason), el("td", { class: "state" }, job.state),
    el("td", {}, utc(job.created * 1000)), el("td", {}, details));
}

async function refresh() {
  const [models, jobs] = await Promise.all([`${api}/models`, `${api}/jobs`].map(async (url) => {
    const answer = await fetch(url, { headers: { accept: "application/json" } });
    return answer.ok ? answer.json() : null;
  }));
  if (models) {
    const named = models.versions.findIndex((v) => v.named);  // newest first: a smaller index is newer
    document.getElementById("named").textContent = models.named ? `named: ${models.named}` : "none named";
    document.querySelector("#models tbody").replaceChildren(
      ...models.versions.map((v, i) => versionRow(v, named >= 0 && i < named)));
  }
  if (jobs) {
    document.getElementById("job-counts").textContent = figures(jobs.counts);
    document.querySelector("#jobs tbody").replaceChildren(...jobs.jobs.map(jobRow));
  }
}

async function poll() {
  try {
    await refresh();
  } finally {
    setTimeout(poll, Number(data.dataset.refreshMs));
  }
}

const train = document.getElementById("train-form");
if (train) {
  train.addEventListener("submit", (event) => {
    event.preventDefault();
    act(`${api}/jobs/training`, { reason: document.getElementById("train-reason").value || "from the console" });
  });
}
poll();
