// What the page itself sees of the browser (warm's capture; bench/baseline.mjs reads this file).
(async () => {
  const d = navigator.userAgentData;
  return {
    user_agent: navigator.userAgent,
    brands: d ? d.brands.map(b => [b.brand, b.version]) : [],
    platform: navigator.platform,
    ua_platform: d ? d.platform : "",
    timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    languages: Array.from(navigator.languages),
    screen: [screen.width, screen.height],
    hardware_concurrency: navigator.hardwareConcurrency,
    inner: [innerWidth, innerHeight],
    outer: [outerWidth, outerHeight],
  };
})()
