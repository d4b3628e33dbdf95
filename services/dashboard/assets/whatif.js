// The what-if form's profile selector: picking a profile shows its fields at once (the
// "Show fields" button does the same without JavaScript).
(function () {
  const pick = document.getElementById('profile');
  if (pick) pick.addEventListener('change', () => pick.form.submit());
})();
