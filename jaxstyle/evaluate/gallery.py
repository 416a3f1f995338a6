"""Static pages of an evaluation: `gallery.html` and the blind `rating.html`.

Both are single self-contained files (inline CSS/JS, no external assets, no
server) that open from file:// and refer to the PNGs in `images/` by relative
paths, so the output folder can be zipped and mailed to raters.

The rating page shows every (content image, model output) pair with its
content and style images, in an order shuffled per rater (seeded by the
rater's name, so a reload shows the same order), the model hidden behind a
code letter. Each output gets 1–5 on image quality, style accuracy and detail
retention; progress is kept in localStorage; "Export CSV" downloads
`ratings_<rater>.csv` (columns in `jaxstyle.evaluate.ratings.COLUMNS`). The code →
model key is not in the page: it is `rating_key.json` beside it.
"""

import html
import json
import math
import os
import random
import string
from typing import Any, Mapping

from jaxstyle import atomic_files
from jaxstyle.evaluate import ratings

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 6px; vertical-align: top; text-align: center; }
img { max-width: 256px; max-height: 256px; display: block; margin: 0 auto; }
.metrics { font-size: 12px; color: #444; text-align: left; margin-top: 4px; }
.missing { color: #a00; font-size: 13px; max-width: 220px; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 10px; margin: 12px 0; }
.card .imgs { display: flex; gap: 10px; align-items: flex-start; }
.card .imgs div { text-align: center; font-size: 13px; }
.crit { margin: 4px 0; }
.crit label { margin-right: 10px; }
#status { margin-left: 1em; color: #064; }
"""


def _fmt(value, spec: str) -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "—"
  if isinstance(value, float) and math.isinf(value):
    return "∞"
  return spec.format(value)


def gallery_html(report: Mapping[str, Any]) -> str:
  """content | style | each model's output, one row per content image."""
  e = html.escape
  rows = report["rows"]
  style = report["style"]
  head = "".join(f"<th>{e(r['label'])}</th>" for r in rows)
  body = []
  for item in report["content_images"]:
    cells = [f"<td><img src=\"{e(item['image'])}\" alt=\"content\"><div>{e(item['stem'])}</div></td>",
             f"<td><img src=\"{e(style['image'])}\" alt=\"style\"><div>{e(style['name'])}</div></td>"]
    for r in rows:
      per = (r.get("per_image") or {}).get(item["stem"])
      if r["status"] != "ok" or per is None:
        reason = r.get("reason") or "no output for this image"
        cells.append(f"<td><div class=\"missing\">{e(r['status'])}: {e(reason)}</div></td>")
        continue
      metrics = (f"SSIM {_fmt(per['ssim'], '{:.3f}')} · PSNR {_fmt(per['psnr'], '{:.2f}')} dB<br>"
                 f"style sim {_fmt(per['style_similarity'], '{:.4f}')} · "
                 f"content dist {_fmt(per['content_distance'], '{:.3f}')}")
      cells.append(f"<td><img src=\"{e(per['image'])}\" alt=\"{e(r['label'])}\">"
                   f"<div class=\"metrics\">{metrics}</div></td>")
    body.append("<tr>" + "".join(cells) + "</tr>")
  if not body:
    body.append(f"<tr><td colspan=\"{len(rows) + 2}\">No content images were evaluated.</td></tr>")
  cond = report["conditions"]
  return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>jaxstyle evaluation gallery</title>
<style>{_CSS}</style></head><body>
<h1>Evaluation gallery</h1>
<p>{e(cond.get('summary', ''))}</p>
<table><thead><tr><th>content</th><th>style</th>{head}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
<p>SSIM and PSNR: output vs content, RGB in [0, 1]. Style similarity: mean Gram-matrix
cosine to the style image (1 = identical statistics). Content distance: relative VGG
feature error to the content (0 = identical).</p>
</body></html>
"""


def assign_codes(labels: list[str], seed: int) -> dict[str, str]:
  """code letter → model label, a seeded shuffle so codes don't follow the table order."""
  order = list(labels)
  random.Random(seed).shuffle(order)
  letters = string.ascii_uppercase
  codes = [letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26]
           for i in range(len(order))]
  return dict(zip(codes, order))


_RATING_JS = r"""
const DATA = JSON.parse(document.getElementById('data').textContent);
const STORE = 'jaxstyle-rating:' + DATA.page_id;
let state = JSON.parse(localStorage.getItem(STORE) || '{"rater": "", "scores": {}}');

function hash(s) {  // FNV-1a, 32 bit
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
  return h >>> 0;
}
function rng(seed) {  // mulberry32
  return function() {
    seed = (seed + 0x6D2B79F5) >>> 0; let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function shuffled(items, rater) {
  const out = items.slice(), r = rng(hash(rater));
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1)); [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
function save() { localStorage.setItem(STORE, JSON.stringify(state)); }
function key(item, crit) { return item.image + '|' + item.code + '|' + crit; }
function total() { return DATA.items.length * DATA.criteria.length; }
function progress() {
  const done = Object.keys(state.scores).length;
  document.getElementById('progress').textContent = done + ' / ' + total() + ' rated';
}
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function render() {
  const root = document.getElementById('items');
  root.innerHTML = '';
  shuffled(DATA.items, state.rater).forEach((item, n) => {
    const card = el('div', {class: 'card', 'data-item': item.image + '|' + item.code});
    card.appendChild(el('h3', {}, (n + 1) + '. output ' + item.code + ' (image ' + item.image + ')'));
    const imgs = el('div', {class: 'imgs'});
    for (const [src, cap] of [[item.content, 'content'], [DATA.style, 'style'], [item.output, 'output ' + item.code]]) {
      const d = el('div'); d.appendChild(el('img', {src: src, alt: cap})); d.appendChild(el('div', {}, cap)); imgs.appendChild(d);
    }
    card.appendChild(imgs);
    for (const [crit, title] of DATA.criteria) {
      const row = el('div', {class: 'crit'}); row.appendChild(el('b', {}, title + ': '));
      for (let s = 1; s <= 5; s++) {
        const id = 'r-' + hash(key(item, crit)) + '-' + s;
        const input = el('input', {type: 'radio', id: id, name: key(item, crit), value: String(s),
                                   'data-image': item.image, 'data-code': item.code, 'data-criterion': crit});
        if (state.scores[key(item, crit)] === s) input.checked = true;
        input.addEventListener('change', () => { state.scores[key(item, crit)] = s; save(); progress(); });
        const label = el('label', {for: id}); label.appendChild(input); label.appendChild(document.createTextNode(' ' + s));
        row.appendChild(label);
      }
      card.appendChild(row);
    }
    root.appendChild(card);
  });
  progress();
}
function start() {
  const name = document.getElementById('rater').value.trim();
  if (!name) { document.getElementById('status').textContent = 'Enter your name first.'; return; }
  if (name !== state.rater) { state = {rater: name, scores: {}}; save(); }
  document.getElementById('status').textContent = '';
  render();
}
function csvField(v) {
  v = String(v);
  return /[",\n\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
}
function exportCsv() {
  if (!state.rater) { document.getElementById('status').textContent = 'Enter your name and press Start first.'; return; }
  const lines = [DATA.columns.join(',')];
  for (const item of shuffled(DATA.items, state.rater)) {
    for (const [crit] of DATA.criteria) {
      const s = state.scores[key(item, crit)];
      if (s !== undefined) lines.push([state.rater, item.image, item.code, crit, s].map(csvField).join(','));
    }
  }
  const blob = new Blob([lines.join('\n') + '\n'], {type: 'text/csv'});
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = 'ratings_' + state.rater.replace(/[^A-Za-z0-9_-]+/g, '_') + '.csv';
  document.body.appendChild(a); a.click(); a.remove();
  const done = lines.length - 1;
  document.getElementById('status').textContent = 'Exported ' + done + ' of ' + total() + ' ratings' +
      (done < total() ? ' (some outputs are not rated yet).' : '.');
}
document.getElementById('start').addEventListener('click', start);
document.getElementById('export').addEventListener('click', exportCsv);
if (state.rater) { document.getElementById('rater').value = state.rater; render(); }
"""


def rating_html(report: Mapping[str, Any], codes: Mapping[str, str], page_id: str) -> str:
  """The blind score sheet for the outputs in `report` (codes: letter → label)."""
  by_label = {r["label"]: r for r in report["rows"]}
  items = []
  for content in report["content_images"]:
    for code, label in sorted(codes.items()):
      per = (by_label[label].get("per_image") or {}).get(content["stem"])
      if per is not None:
        items.append(dict(image=content["stem"], code=code, output=per["image"],
                          content=content["image"]))
  data = dict(page_id=page_id, columns=list(ratings.COLUMNS), style=report["style"]["image"],
              criteria=[[c, ratings.CRITERION_TITLES[c]] for c in ratings.CRITERIA],
              items=items)
  # '</' cannot end the script element early when escaped.
  payload = json.dumps(data).replace("</", "<\\/")
  return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Style transfer rating sheet</title>
<style>{_CSS}</style></head><body>
<h1>Style transfer rating sheet</h1>
<p>Each card shows a content photo, the style image and one stylized output; the
method behind each output is hidden behind a letter. Score every output from
1 (poor) to 5 (excellent) on: <b>image quality</b> (clean, free of artifacts),
<b>style accuracy</b> (colours, textures and strokes of the style image) and
<b>detail retention</b> (the content's objects and edges still recognisable).
Your answers are kept in this browser; press <b>Export CSV</b> when done and send
the downloaded file back.</p>
<p><label>Your name: <input id="rater" type="text"></label>
<button id="start">Start</button> <span id="progress"></span>
<button id="export">Export CSV</button><span id="status"></span></p>
<div id="items"></div>
<script type="application/json" id="data">{payload}</script>
<script>{_RATING_JS}</script>
</body></html>
"""


def write_pages(out_dir: str, report: Mapping[str, Any], seed: int) -> dict[str, str]:
  """Writes gallery.html, rating.html, rating_key.json; returns the code key."""
  atomic_files.write_text(os.path.join(out_dir, "gallery.html"), gallery_html(report))
  rated = [r["label"] for r in report["rows"] if r["status"] == "ok" and r.get("per_image")]
  codes = assign_codes(rated, seed)
  page_id = f"{report['conditions'].get('date', '')}-{seed}"
  atomic_files.write_text(os.path.join(out_dir, "rating.html"), rating_html(report, codes, page_id))
  atomic_files.write_text(os.path.join(out_dir, ratings.KEY_FILE),
         json.dumps({"codes": codes, "page_id": page_id,
                     "note": "code letter shown in rating.html -> model"}, indent=2))
  return codes
