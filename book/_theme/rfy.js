// Read For You: on a phone, a display equation wider than the column is drawn smaller (down to 70% of its
// size) so that most fit; one still wider scrolls inside its box. Desktop pages are left as they are: there
// every equation must fit (tests/check_book.py fails otherwise). Sets window.rfyEquationsFitted when done.
(() => {
  const PHONE_PX = 700, SMALLEST = 0.7;
  const fit = () => {
    for (const box of document.querySelectorAll('div.math mjx-container[display="true"]')) {
      // MathJax sets the equation's own size on the box; scale from that, never from the text around it.
      if (!box.dataset.rfySize) box.dataset.rfySize = String(parseFloat(getComputedStyle(box).fontSize));
      const size = Number(box.dataset.rfySize);
      box.style.fontSize = `${size}px`;
      const math = box.querySelector('mjx-math');
      if (!math || window.innerWidth >= PHONE_PX) continue;
      const ratio = box.clientWidth / math.getBoundingClientRect().width;
      if (ratio < 1) box.style.fontSize = `${(size * Math.max(ratio * 0.99, SMALLEST)).toFixed(2)}px`;
    }
    window.rfyEquationsFitted = true;
  };
  window.addEventListener('load', () => {
    if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) { window.rfyEquationsFitted = true; return; }
    MathJax.startup.promise.then(fit);
    window.addEventListener('resize', fit);
  });
})();
