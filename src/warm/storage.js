// The page origin's localStorage (warm's capture; bench/baseline.mjs reads this file).
(() => {
  let items = [];
  try { for (let i = 0; i < localStorage.length; i++) { const k = localStorage.key(i); items.push([k, localStorage.getItem(k)]); } } catch (e) {}
  return { origin: location.origin, items };
})()
