// While an action this dashboard sent waits for the alerter to confirm it, the page looks
// again every two seconds (for a minute at most), so the confirmation shows without a reload.
(function () {
  const key = 'dtwin-pending-tries';
  if (!document.querySelector('.pending')) { sessionStorage.removeItem(key); return; }
  const tries = Number(sessionStorage.getItem(key) || '0');
  if (tries >= 30) return;
  sessionStorage.setItem(key, String(tries + 1));
  setTimeout(() => location.reload(), 2000);
})();
