"""The predict page at ``GET /``: pick an image, see the top-5 labels with bars.

Like the predict tab of ModelArts' console, in one self-contained HTML document (no external
scripts, styles or fonts), posting the file to ``POST /`` as the multipart field ``images``.
"""

from __future__ import annotations

import html

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Predict · __MODEL__</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 52rem; color: #1f2328; }
  h1 { font-size: 1.3rem; margin-bottom: .2rem; }
  .hint { color: #59636e; margin-top: 0; }
  .panes { display: flex; gap: 2rem; flex-wrap: wrap; margin-top: 1.5rem; }
  .pane { flex: 1 1 20rem; }
  #preview { max-width: 100%; max-height: 18rem; display: none; border: 1px solid #d1d9e0; }
  #status { margin: .8rem 0; min-height: 1.2rem; }
  #status.error { color: #cf222e; }
  #predicted { font-size: 1.2rem; font-weight: 600; margin-bottom: .8rem; }
  .row { margin-bottom: .55rem; }
  .row .name { display: flex; justify-content: space-between; font-size: .95rem; }
  .bar { height: .6rem; background: #eef1f4; border-radius: .3rem; overflow: hidden; }
  .bar span { display: block; height: 100%; background: #0969da; }
  button { padding: .45rem 1.1rem; font-size: 1rem; }
</style>
</head>
<body>
<h1>Predict with <code>__MODEL__</code></h1>
<p class="hint">Choose an image (JPEG, PNG, BMP, GIF, WebP); it is sent to <code>POST /</code>
as the form field <code>images</code> and the five most likely labels are shown.</p>
<div class="panes">
  <div class="pane">
    <input id="file" type="file" accept="image/*">
    <p><button id="predict" disabled>Predict</button></p>
    <img id="preview" alt="the chosen image">
  </div>
  <div class="pane">
    <div id="status"></div>
    <div id="predicted"></div>
    <div id="scores"></div>
  </div>
</div>
<script>
"use strict";
const file = document.getElementById("file");
const button = document.getElementById("predict");
const preview = document.getElementById("preview");
const status = document.getElementById("status");
const predicted = document.getElementById("predicted");
const scores = document.getElementById("scores");

function say(text, isError) {
  status.textContent = text;
  status.className = isError ? "error" : "";
}

file.addEventListener("change", () => {
  const chosen = file.files[0];
  button.disabled = !chosen;
  predicted.textContent = "";
  scores.replaceChildren();
  if (chosen) {
    preview.src = URL.createObjectURL(chosen);
    preview.style.display = "block";
    predict();
  }
});
button.addEventListener("click", predict);

async function predict() {
  const chosen = file.files[0];
  if (!chosen) return;
  const form = new FormData();
  form.append("images", chosen, chosen.name);
  say("Predicting…", false);
  button.disabled = true;
  try {
    const response = await fetch("./", { method: "POST", body: form });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    show(answer);
    const provider = response.headers.get("X-KubeArts-Provider");
    say(provider ? "Served by " + provider : "", false);
  } catch (problem) {
    say("Prediction failed: " + problem.message, true);
  } finally {
    button.disabled = false;
  }
}

function show(answer) {
  predicted.textContent = answer.predicted_label;
  predicted.setAttribute("data-label", answer.predicted_label);
  const rows = answer.scores.map(([label, score]) => {
    const row = document.createElement("div");
    row.className = "row";
    const name = document.createElement("div");
    name.className = "name";
    const text = document.createElement("span");
    text.textContent = label;
    const value = document.createElement("span");
    value.textContent = (score * 100).toFixed(1) + "%";
    name.append(text, value);
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = Math.max(0, Math.min(100, score * 100)).toFixed(1) + "%";
    bar.append(fill);
    row.append(name, bar);
    return row;
  });
  scores.replaceChildren(...rows);
}
</script>
</body>
</html>
"""


def render(model_name: str) -> str:
    """The page for ``model_name``."""
    return _PAGE.replace("__MODEL__", html.escape(model_name))
