// Marks the page as loaded, so a smoke test can tell the script was served with the page.
document.addEventListener("DOMContentLoaded", function () {
  document.body.dataset.loaded = "true";
  var note = document.createElement("p");
  note.textContent = "JavaScript loaded from a precompressed asset.";
  document.querySelector("main").appendChild(note);
});
