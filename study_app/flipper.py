"""The A/B flipper: the original crop beside one reconstruction slot in which A and B are
swapped in the browser, instantly and in the same place, as the HiFiC raters could flip
between the two reconstructions (Sec. 4.3).

A Streamlit custom component (``st.components.v2``, mounted in the page itself, not in an
iframe): the three crops travel once per trial as PNG data URIs keyed ``reference``, ``A``
and ``B`` (never method names or file paths); a flip is pure client-side JavaScript (the
**Flip** button, ``F`` or ``Space``) and sends nothing to the server.  Both reconstructions
are decoded up front and stacked in one grid cell, so a flip only changes which is visible.
"""

from __future__ import annotations

import base64
from pathlib import Path

import streamlit as st

ROLES = ("reference", "A", "B")

HTML = """
<div class="flipper">
  <div class="bar">
    <button type="button" class="flip"></button>
    <span class="hint">F or Space: flip</span>
  </div>
  <div class="panes">
    <figure><figcaption>Original</figcaption><img class="reference" alt="Original"></figure>
    <figure><figcaption class="showing"></figcaption>
      <div class="slot"><img class="side" data-side="A" alt="A"><img class="side" data-side="B" alt="B"></div>
    </figure>
  </div>
</div>
"""

CSS = """
.bar { display: flex; gap: 1rem; align-items: center; margin-bottom: 0.5rem; }
.flip { font: inherit; padding: 0.4rem 1.2rem; border-radius: 0.5rem; border: none; cursor: pointer;
        color: white; background: var(--st-primary-color, #ff4b4b); }
.hint { color: var(--st-text-color, #31333f); opacity: 0.6; font-size: 0.85rem; }
.panes { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
figure { margin: 0; }
figcaption { font-weight: 600; font-size: 1.25rem; margin-bottom: 0.3rem; color: var(--st-text-color, #31333f); }
img { display: block; max-width: none; image-rendering: auto; }
.slot { display: grid; }
.slot img { grid-area: 1 / 1; visibility: hidden; }
.slot img.current { visibility: visible; }
"""

JS = """
export default function ({ parentElement, data }) {
  const root = parentElement.querySelector(".flipper");
  const button = root.querySelector("button.flip");
  const caption = root.querySelector(".showing");
  const sides = { A: root.querySelector('img[data-side="A"]'), B: root.querySelector('img[data-side="B"]') };
  root.querySelector("img.reference").src = data.reference;
  sides.A.src = data.A;
  sides.B.src = data.B;
  let showing = "A";
  const show = (side) => {
    showing = side;
    sides.A.classList.toggle("current", side === "A");
    sides.B.classList.toggle("current", side === "B");
    caption.textContent = `Showing ${side}`;
    button.textContent = `Flip to ${side === "A" ? "B" : "A"}`;
  };
  const flip = () => show(showing === "A" ? "B" : "A");
  const typing = (el) => el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
  const onKey = (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.composedPath()[0])) return;
    if (event.key !== "f" && event.key !== "F" && event.key !== " ") return;
    // Space must neither scroll nor press a focused answer button; F is the flipper's alone
    event.preventDefault();
    event.stopPropagation();
    if (!event.repeat) flip();
  };
  button.onclick = flip;
  window.addEventListener("keydown", onKey, true);
  show("A");
  return () => window.removeEventListener("keydown", onKey, true);
}
"""

_mount = st.components.v2.component("hific_study_flipper", html=HTML, css=CSS, js=JS)


def data_uri(path: Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def flipper(paths: dict[str, Path], key: str) -> None:
    """Show the ``reference`` crop and the A/B slot for one trial; ``key`` names the trial,
    so that every trial mounts afresh and starts with A."""
    _mount(data={role: data_uri(paths[role]) for role in ROLES}, key=key)
