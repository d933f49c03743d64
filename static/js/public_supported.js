// Run first thing in <body>, before anything is drawn: the NHS design system styles its scripted components only once
// the body says scripts run and the browser supports them, so pages do not flash their unscripted form.
document.body.className += ` js-enabled${"noModule" in HTMLScriptElement.prototype ? " nhsuk-frontend-supported" : ""}`;
