// A table of inline rows (a user's role profiles) that is wider than a phone scrolls sideways inside its group:
// the group takes keyboard focus and is named, so it can be scrolled without a mouse, as the lists' results are.
document.querySelectorAll(".inline-group").forEach((group) => {
  if (group.scrollWidth <= group.clientWidth + 1) {
    return;
  }
  const heading = group.querySelector("h2");
  group.tabIndex = 0;
  group.setAttribute("role", "region");
  group.setAttribute("aria-label", `${heading ? heading.textContent.trim() : "Rows"}, scrolls sideways`);
});
