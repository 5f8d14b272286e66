/* Motcua console: warns before the officer's session ends, and renews it on "Tiếp tục làm việc".
 *
 * The page (templates/base.html) says in how many seconds its session ends (data-expires-in, counted
 * from when the page was made: the browser's clock may differ from the server's), how long before to
 * warn (data-warn-before) and the end as HH:MM (data-ends-at). The button posts the banner's form to
 * /can-bo/phien (a new token, the old one revoked, audited); asking for JSON keeps the page as it is,
 * with whatever is being typed. Served from the gateway's own origin: the CSP allows this file only
 * (script-src 'self'), no inline script, no eval. Without JavaScript the banner stays hidden and the
 * footer says until when the session runs. */
(function () {
  "use strict";
  var banner = document.getElementById("session-warning");
  if (!banner || !window.fetch) {
    return;
  }
  var text = document.getElementById("session-warning-text");
  var form = banner.querySelector("form");
  var button = form.querySelector("button");
  var status = document.getElementById("session-status");
  var footerEnd = document.querySelector("footer .session-ends-at");
  var warnBefore = parseInt(banner.getAttribute("data-warn-before"), 10) * 1000;
  var endsAt = banner.getAttribute("data-ends-at");
  var deadline = Date.now() + parseInt(banner.getAttribute("data-expires-in"), 10) * 1000;
  var state = "quiet"; // quiet → warned → ended (a renewal brings it back to quiet)

  function minutesLeft() {
    return Math.max(1, Math.ceil((deadline - Date.now()) / 60000));
  }

  function show(shown) {
    banner.hidden = !shown;
    document.body.classList.toggle("session-banner", shown); // room below the page for the banner
  }

  function say(message) {
    // Set once per state: the region is role=alert, and every change of it is read aloud.
    text.textContent = message;
  }

  function tick() {
    var left = deadline - Date.now();
    if (left <= 0 && state !== "ended") {
      state = "ended";
      show(true);
      banner.classList.add("ended");
      button.hidden = true;
      say("Phiên đăng nhập đã hết hạn lúc " + endsAt + ". Nội dung đang nhập không bị mất: khi bạn gửi, " +
          "hệ thống sẽ yêu cầu đăng nhập lại rồi đưa bạn về trang này với nội dung đã nhập.");
    } else if (left > 0 && left <= warnBefore && state === "quiet") {
      state = "warned";
      show(true);
      say("Phiên đăng nhập sẽ hết hạn lúc " + endsAt + " (còn khoảng " + minutesLeft() + " phút). " +
          "Bấm «Tiếp tục làm việc» để gia hạn; nội dung đang nhập vẫn được giữ nguyên.");
    }
  }

  function renewed(answer) {
    deadline = Date.now() + answer.expires_in * 1000;
    endsAt = answer.ends_at;
    state = "quiet";
    show(false);
    banner.classList.remove("ended");
    button.hidden = false;
    if (footerEnd) {
      footerEnd.textContent = endsAt;
    }
    status.textContent = "Đã gia hạn phiên đăng nhập đến " + endsAt + ".";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: {"Accept": "application/json"},
      credentials: "same-origin"
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (!response.ok || type.indexOf("application/json") !== 0) {
        // Answered by the sign-in page: the session had already ended.
        deadline = Date.now();
        state = "warned";
        return;
      }
      return response.json().then(renewed);
    }).catch(function () {
      say("Chưa gia hạn được phiên đăng nhập (mất kết nối). Vui lòng bấm «Tiếp tục làm việc» lần nữa.");
    }).then(function () {
      button.disabled = false;
      tick();
    });
  });

  tick();
  window.setInterval(tick, 1000);
}());
