import Foundation
import RootcausesJSON
import RootcausesLocalStack
import RootcausesTesting
import RootcausesTransport
import Subprocess
import SystemPackage
import Testing

extension Integration {
    /// The HTML fact sheet in a real browser: Debian's headless Chromium (`.ci/run` installs it)
    /// lays the page out; a probe script added to a copy of the page reads what it rendered.
    @Suite(.serialized) struct HTMLFactSheetTests {
        static let chromium = "/usr/bin/chromium"
        /// Where the screenshots go (kept after the run; `.build` is not committed).
        static let artifacts = packageRoot + "/.build/test-artifacts"

        /// Reads the laid-out page: each highlight's text as shown (marks hidden), the numbers'
        /// link texts, every chart's marks with a drawn size, links without a target, anything
        /// fetched, and whether the page fits the window's width. Percent-encoded JSON in a
        /// `<pre>`, so the dumped DOM needs no unescaping.
        static let probe = """
            <script>
            (function () {
              const out = {};
              const hide = document.createElement('style');
              hide.textContent = 'sup.mark{display:none}';
              document.head.appendChild(hide);
              out.highlights = [...document.querySelectorAll('li.highlight .text')].map(e => e.innerText.trim());
              out.figures = [...document.querySelectorAll('a.figure')].map(a => a.innerText.trim());
              hide.remove();
              out.marked = [...document.querySelectorAll('a.figure')].filter(a => a.querySelector('sup.mark')).length;
              out.charts = [...document.querySelectorAll('svg.chart')].map(svg => ({
                id: svg.id,
                marks: svg.querySelectorAll('.mark').length,
                drawn: [...svg.querySelectorAll('.mark')].filter(m => {
                  const r = m.getBoundingClientRect(); return r.width > 0 && r.height > 0;
                }).length,
                empty: svg.textContent.includes('no figures yet'),
                width: svg.getBoundingClientRect().width
              }));
              out.brokenLinks = [...document.querySelectorAll('a[href]')]
                .map(a => a.getAttribute('href'))
                .filter(h => !h.startsWith('#') || !document.getElementById(h.slice(1)));
              out.fetched = document.querySelectorAll('[src], link[href], object, iframe, img').length;
              out.explanations = document.querySelectorAll('section.explanation').length;
              const first = document.querySelector('li.highlight');
              const text = first.querySelector('.text').getBoundingClientRect();
              const figure = first.querySelector('figure.charts').getBoundingClientRect();
              out.chartsBesideText = figure.left >= text.right;
              out.scrollWidth = document.documentElement.scrollWidth;
              out.innerWidth = window.innerWidth;
              const pre = document.createElement('pre');
              pre.id = 'rootcauses-probe';
              pre.textContent = encodeURIComponent(JSON.stringify(out));
              document.body.appendChild(pre);
            })();
            </script>
            """

        /// Lays `html` out in a window `width` pixels wide; what the probe read.
        static func render(_ html: String, width: Int) async throws -> JSON {
            let page = try temporaryFile("probe.html")
            defer { try? FileManager.default.removeItem(atPath: (page as NSString).deletingLastPathComponent) }
            let probed = html.replacingOccurrences(of: "</body>", with: probe + "</body>")
            try probed.write(toFile: page, atomically: true, encoding: .utf8)
            let (status, output) = try await runProgram(
                chromium,
                headless + ["--window-size=\(width),900", "--dump-dom", "file://" + page]
            )
            #expect(status == 0, "chromium --dump-dom: \(output.suffix(2000))")
            guard let start = output.range(of: "<pre id=\"rootcauses-probe\">"),
                let end = output.range(of: "</pre>", range: start.upperBound..<output.endIndex),
                let json = String(output[start.upperBound..<end.lowerBound]).removingPercentEncoding
            else {
                Issue.record("the probe wrote nothing: \(output.suffix(2000))")
                return .null
            }
            return try JSONParser.parse(json)
        }

        static var headless: [String] {
            // Chromium will not start as root with its sandbox (CI runs as root).
            (geteuid() == 0 ? ["--no-sandbox"] : []) + [
                "--headless", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                "--user-data-dir=/tmp/rootcauses-html-\(getpid())-profile",
            ]
        }

        static func temporaryFile(_ name: String) throws -> String {
            let folder = "/tmp/rootcauses-html-\(getpid())-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            return folder + "/" + name
        }

        /// The Markdown fact sheet's highlights as a reader sees them: "Heading: text".
        static func markdownHighlights(_ markdown: String) -> [String] {
            markdown.split(separator: "\n").filter { $0.hasPrefix("- ") }.map { line in
                String(line.dropFirst(2)).replacingOccurrences(of: "*", with: "")
                    .split(whereSeparator: \.isWhitespace).joined(separator: " ")
            }
        }

        @Test func theFebruary2023FactSheetRendersInChromiumWithItsNumbersChartsAndExplanations() async throws {
            try #require(
                FileManager.default.isExecutableFile(atPath: Self.chromium),
                "headless Chromium is needed: apt-get install chromium (.ci/run installs it)"
            )
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let seq = try await submitSample(through: intake)
                let reporting = try await stack.reportingClient()
                let request: JSON = ["op": "factsheet", "date": "2023-02-06", "min_seq": .int(seq)]
                let markdown = try await reporting.expectOK(request.setting("format", to: "markdown"))
                let pinned = try #require(markdown["as_of_seq"])
                let json = try await reporting.expectOK(
                    request.setting("format", to: "json").setting("as_of_seq", to: pinned)
                )
                let answer = try await reporting.expectOK(
                    request.setting("format", to: "html").setting("as_of_seq", to: pinned)
                )
                #expect(answer["as_of_seq"] == pinned)
                let html = try #require(answer["text"]?.stringValue)
                #expect(html.hasPrefix("<!DOCTYPE html>"))

                let wide = try await Self.render(html, width: 1100)
                // The words and numbers as rendered are the Markdown fact sheet's, highlight by highlight.
                let expected = Self.markdownHighlights(try #require(markdown["text"]?.stringValue))
                let rendered = try #require(wide["highlights"]?.arrayValue).compactMap {
                    $0.stringValue?.split(whereSeparator: \.isWhitespace).joined(separator: " ")
                }
                #expect(rendered.count == 20)
                #expect(rendered == expected)
                // Every number is a link, in order, phrased as in the JSON fact sheet.
                let highlights: [JSON] = try #require(json["highlights"]?.arrayValue)
                let numbers: [JSON] = highlights.flatMap { (highlight: JSON) -> [JSON] in
                    highlight["numbers"]?.arrayValue ?? []
                }
                let phrased: [String] = numbers.compactMap { $0["text"]?.stringValue }
                #expect(wide["figures"]?.arrayValue?.compactMap(\.stringValue) == phrased)
                // Estimates (Call to Action companies) and upper bounds (open overlaps) are marked.
                let marked = numbers.filter { (number: JSON) -> Bool in
                    number["estimate"] == true || number["lower"] != nil
                }.count
                #expect(marked >= 2)
                #expect(wide["marked"]?.int64Value == Int64(marked))
                // A chart pair beside each highlight with a total; each draws marks.
                let charts = try #require(wide["charts"]?.arrayValue)
                #expect(charts.count == 2 * 18)
                for chart in charts {
                    #expect(chart["empty"] == false, "chart \(chart["id"] ?? .null) has no figures")
                    #expect((chart["drawn"]?.int64Value ?? 0) > 0, "chart \(chart["id"] ?? .null) drew nothing")
                }
                // An explanation per number (no placeholder of the template is used twice).
                #expect(wide["explanations"]?.int64Value == Int64(phrased.count))
                #expect(wide["brokenLinks"]?.arrayValue?.isEmpty == true, "\(wide["brokenLinks"] ?? .null)")
                #expect(wide["fetched"] == 0)
                #expect(wide["chartsBesideText"] == true)
                #expect(wide["scrollWidth"] == wide["innerWidth"])

                // On a phone: one column, nothing wider than the screen.
                let narrow = try await Self.render(html, width: 390)
                #expect(narrow["chartsBesideText"] == false)
                #expect(narrow["scrollWidth"] == narrow["innerWidth"])

                // The screenshot of the page as a reader first sees it.
                try FileManager.default.createDirectory(atPath: Self.artifacts, withIntermediateDirectories: true)
                let shot = Self.artifacts + "/factsheet-2023-02-06.png"
                try? FileManager.default.removeItem(atPath: shot)
                let page = try Self.temporaryFile("factsheet.html")
                try html.write(toFile: page, atomically: true, encoding: .utf8)
                let (status, output) = try await runProgram(
                    Self.chromium,
                    Self.headless + ["--window-size=1100,1500", "--screenshot=\(shot)", "file://" + page]
                )
                #expect(status == 0, "\(output.suffix(2000))")
                let png = try #require(FileManager.default.contents(atPath: shot))
                #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
                #expect(png.count > 50_000)
                Attachment.record(png, named: "factsheet-2023-02-06.png")
            }
        }

        /// A browser that never prints is stopped, with the processes it started, at the deadline
        /// and when the CLI is interrupted, and the CLI says so instead of waiting for ever.
        @Test func aBrowserThatHangsIsStoppedWithItsChildrenAtTheDeadlineOrOnInterrupt() async throws {
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let seq = try await submitSample(through: intake)
                await intake.close()
                let pdfPath = try Self.temporaryFile("sheet.pdf")
                func environment(_ browser: String, timeout: String) -> [String: String?] {
                    [
                        "ROOTCAUSES_TOKEN": stack.adminToken, "ROOTCAUSES_REPORTING": stack.reportingAddress,
                        "ROOTCAUSES_CHROMIUM": browser, "ROOTCAUSES_PDF_TIMEOUT_SECONDS": timeout,
                    ]
                }
                let arguments = [
                    "factsheet", "--format", "pdf", "--date", "2023-02-06", "--min-seq", "\(seq)", "-o", pdfPath,
                ]

                let deadline = try Self.hangingBrowser()
                defer { for pid in deadline.started() { kill(pid, SIGKILL) } }
                let started = ContinuousClock.now
                let timedOut = try await runRootcauses(arguments, environment: environment(deadline.path, timeout: "2"))
                #expect(timedOut.status != 0)
                #expect(
                    timedOut.output.contains("did not print the fact sheet to \(pdfPath) within 2 seconds"),
                    "\(timedOut.output)"
                )
                #expect(ContinuousClock.now - started < .seconds(60))
                #expect(!FileManager.default.fileExists(atPath: pdfPath))
                #expect(deadline.started().count == 2)
                for pid in deadline.started() { #expect(!Self.isRunning(pid), "process \(pid) was left running") }

                // Interrupted (Ctrl-C) while the browser hangs: its whole group is stopped too.
                let interrupted = try Self.hangingBrowser()
                defer { for pid in interrupted.started() { kill(pid, SIGKILL) } }
                let outcome = try await Subprocess.run(
                    .path(FilePath(ServiceStack.defaultBinDirectory + "/rootcauses")),
                    arguments: Arguments(arguments),
                    environment: inheritedEnvironment(updating: environment(interrupted.path, timeout: "600")),
                    input: .none,
                    output: .discarded,
                    error: .discarded
                ) { execution in
                    for _ in 0..<600 where interrupted.started().count < 2 {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    try execution.send(signal: .interrupt)
                }
                #expect(outcome.terminationStatus != .exited(0))
                #expect(interrupted.started().count == 2)
                for pid in interrupted.started() { #expect(!Self.isRunning(pid), "process \(pid) was left running") }

                let refused = try await runRootcauses(
                    arguments,
                    environment: environment(deadline.path, timeout: "soon")
                )
                #expect(refused.status != 0)
                #expect(refused.output.contains("ROOTCAUSES_PDF_TIMEOUT_SECONDS must be a whole number"))
            }
        }

        /// A stand-in browser that starts a child ignoring SIGTERM, as Chromium starts its
        /// renderers, writes both pids, and waits. `started()` reads the pids written so far.
        static func hangingBrowser() throws -> (path: String, started: @Sendable () -> [pid_t]) {
            let pids = try temporaryFile("pids")
            let path = try temporaryFile("hanging-browser")
            try Data(
                "#!/bin/sh\n(trap '' TERM; exec sleep 300) &\necho \"$$ $!\" > \(pids).tmp\nmv \(pids).tmp \(pids)\nwait\n"
                    .utf8
            )
            .write(to: URL(fileURLWithPath: path))
            chmod(path, 0o755)
            return (
                path,
                {
                    let written = (try? String(contentsOfFile: pids, encoding: .utf8)) ?? ""
                    return written.split(separator: " ").compactMap {
                        pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines))
                    }
                }
            )
        }

        /// Whether `pid` is a live process (a zombie waiting for its parent is not).
        static func isRunning(_ pid: pid_t) -> Bool {
            guard kill(pid, 0) == 0 else { return false }
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let state = stat.split(separator: ")").last?.split(separator: " ").first
            else { return false }
            return state != "Z"
        }

        /// The CLI writes the HTML and, through headless Chromium, the PDF; a published fact
        /// sheet comes out the same as the live one of its date and seq.
        @Test func theCLIWritesHTMLAndPDFAndAPublishedFactSheetDrawsAgain() async throws {
            try #require(FileManager.default.isExecutableFile(atPath: Self.chromium))
            try await withServiceStack { stack in
                let intake = try await stack.intakeClient()
                let seq = try await submitSample(through: intake)
                let environment: [String: String?] = [
                    "ROOTCAUSES_TOKEN": stack.adminToken, "ROOTCAUSES_REPORTING": stack.reportingAddress,
                ]
                let htmlPath = try Self.temporaryFile("sheet.html")
                let html = try await runRootcauses(
                    [
                        "factsheet", "--format", "html", "--date", "2023-02-06", "--min-seq", "\(seq)",
                        "-o", htmlPath,
                    ],
                    environment: environment
                )
                #expect(html.status == 0, "\(html.output)")
                let written = try String(contentsOfFile: htmlPath, encoding: .utf8)
                #expect(written.hasPrefix("<!DOCTYPE html>"))
                #expect(written.contains("<svg"))

                let pdfPath = try Self.temporaryFile("sheet.pdf")
                let pdf = try await runRootcauses(
                    ["factsheet", "--format", "pdf", "--date", "2023-02-06", "--min-seq", "\(seq)", "-o", pdfPath],
                    environment: environment.merging(["ROOTCAUSES_CHROMIUM": Self.chromium]) { $1 }
                )
                #expect(pdf.status == 0, "\(pdf.output)")
                let bytes = try #require(FileManager.default.contents(atPath: pdfPath))
                #expect(bytes.starts(with: Array("%PDF".utf8)))
                #expect(bytes.count > 20_000)

                let missingOutput = try await runRootcauses(["factsheet", "--format", "pdf"], environment: environment)
                #expect(missingOutput.status != 0)
                #expect(missingOutput.output.contains("--format pdf writes a file: give -o FILE"))

                // Published, then drawn again from its date and seq: the live document of the same.
                let reporting = try await stack.reportingClient()
                let published = try await reporting.expectOK([
                    "op": "publish", "publication_id": "fs-2023-02", "date": "2023-02-06", "min_seq": .int(seq),
                ])
                let again = try await reporting.expectOK([
                    "op": "factsheet", "format": "html", "published_id": "fs-2023-02",
                ])
                #expect(again["publication_id"] == "fs-2023-02")
                #expect(again["as_of_seq"] == published["as_of_seq"])
                let live = try await reporting.expectOK([
                    "op": "factsheet", "format": "html", "date": "2023-02-06",
                    "as_of_seq": published["as_of_seq"] ?? .null,
                ])
                let againText = again["text"]?.stringValue ?? ""
                let liveText = live["text"]?.stringValue ?? ""
                let common = zip(againText, liveText).prefix { $0 == $1 }.count
                #expect(
                    againText == liveText,
                    "differs at \(common): \(againText.dropFirst(common).prefix(300)) vs \(liveText.dropFirst(common).prefix(300))"
                )
                let unknown = try await reporting.request([
                    "op": "factsheet", "format": "html", "published_id": "no-such-thing",
                ])
                #expect(unknown["error"]?["code"] == "validation_failed")

                // Words from the data are text, never markup: a deduplication's reason is shown
                // exactly as written.
                let reason = "<script>alert('x')</script> & AT&amp;T"
                let deduplicated = try await intake.expectOK([
                    "op": "deduplicate", "adjustment_id": "msme-gt", "indicator": "msme_financing_usd",
                    "country": "GT", "period": "FY2023Q1", "method": "max", "reason": .string(reason),
                ])
                let withReason = try await reporting.expectOK([
                    "op": "factsheet", "format": "html", "date": "2023-02-06",
                    "min_seq": deduplicated["seq"] ?? .null,
                ])
                let page = try #require(withReason["text"]?.stringValue)
                #expect(!page.contains("<script"))
                #expect(page.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; AT&amp;amp;T"))
            }
        }
    }
}
