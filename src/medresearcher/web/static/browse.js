// Small helpers of the browse pages: open or close every observation of a trajectory.
"use strict";

(function () {
  const toggle = (open) => () => {
    for (const details of document.querySelectorAll("details.observation")) {
      details.open = open;
    }
  };
  const expand = document.getElementById("expand-steps");
  const collapse = document.getElementById("collapse-steps");
  if (expand) expand.addEventListener("click", toggle(true));
  if (collapse) collapse.addEventListener("click", toggle(false));
})();
