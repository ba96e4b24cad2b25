import ArgumentParser
import Foundation
import MamoriCore
import MamoriProtocol

/// `mamori inspect`: the self-inspection report (自己点検), from mamorid.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Run the self-inspection and print the report; exit 1 when any check fails.",
        discussion: """
            Checks: second factors for accounts usable in the My Number zone, idle accounts, expired \
            assignments, privileged roles and their holders, separation of duty, locked accounts and \
            temporary passwords, audit chain integrity and retention, the last access review, this \
            terminal's PAM services, and policy warnings. Each is pass, warn or fail.

            Example: mamori inspect --format html > inspection-2026-11-30.html
            """
    )

    @Option(help: "text, markdown or html (a printable report). --json prints the report as JSON.")
    var format = "text"

    @OptionGroup var connection: ConnectionOptions

    func validate() throws {
        guard ["text", "markdown", "html"].contains(format) else {
            throw ValidationError("The format must be text, markdown or html.")
        }
    }

    func run() throws {
        let reply = try connection.call(.inspect, timeout: DaemonConnection.wholeTrailTimeout)
        let inspected = try ConnectionOptions.read(reply, as: InspectReply.self)
        let report: InspectionReport
        do {
            report = try inspected.report.decode(InspectionReport.self)
        } catch {
            throw CommandFailure("mamorid sent a report this command cannot read.")
        }
        if connection.json {
            print(inspected.report.text)
        } else {
            switch format {
            case "markdown": print(InspectionRendering.markdown(report))
            case "html": print(InspectionRendering.html(report))
            default: print(InspectionRendering.text(report))
            }
        }
        if report.overall == .fail { throw ExitCode.answeredNo }
    }
}

/// The report as a person reads it: on the terminal, in Markdown, or as a printable HTML page.
enum InspectionRendering {
    static func label(_ status: InspectionReport.Status) -> String {
        switch status {
        case .pass: "PASS"
        case .warn: "WARN"
        case .fail: "FAIL"
        }
    }

    static func verdict(_ report: InspectionReport) -> String {
        "\(report.count(.pass)) pass, \(report.count(.warn)) warn, \(report.count(.fail)) fail"
    }

    static func text(_ report: InspectionReport) -> String {
        var lines = [
            "Self-inspection (自己点検) — \(report.time)",
            Terminal.fields([
                ("run by", report.inspector), ("terminal", report.terminal), ("zone", report.zone),
                ("policy", report.policyRevision),
            ]),
            "",
        ]
        for finding in report.findings {
            lines.append("[\(label(finding.status))] \(finding.title): \(finding.summary)")
            for item in finding.items { lines.append("       - \(item)") }
        }
        lines.append("")
        lines.append("Result: \(verdict(report)).")
        return lines.joined(separator: "\n")
    }

    static func markdown(_ report: InspectionReport) -> String {
        func cell(_ text: String) -> String {
            text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
        }
        var lines = [
            "# Self-inspection report (自己点検結果)", "",
            "| | |", "| --- | --- |",
            "| Date | \(cell(report.time)) |", "| Run by | \(cell(report.inspector)) |",
            "| Terminal | \(cell(report.terminal)) |", "| Zone | \(cell(report.zone)) |",
            "| Policy revision | `\(cell(report.policyRevision))` |", "| Result | \(verdict(report)) |", "",
            "## Summary", "", "| Check | Result | Finding |", "| --- | --- | --- |",
        ]
        for finding in report.findings {
            lines.append("| \(cell(finding.title)) | **\(label(finding.status))** | \(cell(finding.summary)) |")
        }
        lines += ["", "## Findings"]
        for finding in report.findings {
            lines += ["", "### \(label(finding.status)): \(finding.title)", "", finding.summary, ""]
            for item in finding.items { lines.append("- \(item)") }
            if !finding.items.isEmpty { lines.append("") }
            lines.append("*Basis:* \(finding.basis)")
        }
        return lines.joined(separator: "\n")
    }

    static func html(_ report: InspectionReport) -> String {
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        func badge(_ status: InspectionReport.Status) -> String {
            "<span class=\"\(status.rawValue)\">\(label(status))</span>"
        }
        var html = """
            <!DOCTYPE html>
            <html lang="ja">
            <head>
            <meta charset="utf-8">
            <title>Self-inspection report — \(escape(report.terminal)) — \(escape(report.time))</title>
            <style>
            body { font-family: sans-serif; max-width: 60em; margin: 2em auto; }
            table { border-collapse: collapse; } td, th { border: 1px solid #888; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
            .pass { color: #185c1e; font-weight: bold; } .warn { color: #8a5a00; font-weight: bold; } .fail { color: #a00000; font-weight: bold; }
            .basis { color: #444; font-size: 90%; } @media print { section { break-inside: avoid; } }
            </style>
            </head>
            <body>
            <h1>Self-inspection report (自己点検結果)</h1>
            <table>
            <tr><th>Date</th><td>\(escape(report.time))</td></tr>
            <tr><th>Run by</th><td>\(escape(report.inspector))</td></tr>
            <tr><th>Terminal</th><td>\(escape(report.terminal))</td></tr>
            <tr><th>Zone</th><td>\(escape(report.zone))</td></tr>
            <tr><th>Policy revision</th><td><code>\(escape(report.policyRevision))</code></td></tr>
            <tr><th>Result</th><td>\(badge(report.overall)) \(escape(verdict(report)))</td></tr>
            </table>
            <h2>Summary</h2>
            <table>
            <tr><th>Check</th><th>Result</th><th>Finding</th></tr>

            """
        for finding in report.findings {
            html +=
                "<tr><td>\(escape(finding.title))</td><td>\(badge(finding.status))</td><td>\(escape(finding.summary))</td></tr>\n"
        }
        html += "</table>\n<h2>Findings</h2>\n"
        for finding in report.findings {
            html +=
                "<section id=\"\(escape(finding.check))\">\n<h3>\(badge(finding.status)) \(escape(finding.title))</h3>\n"
            html += "<p>\(escape(finding.summary))</p>\n"
            if !finding.items.isEmpty {
                html += "<ul>\n" + finding.items.map { "<li>\(escape($0))</li>\n" }.joined() + "</ul>\n"
            }
            html += "<p class=\"basis\">Basis: \(escape(finding.basis))</p>\n</section>\n"
        }
        html += "</body>\n</html>"
        return html
    }
}

/// `mamori review record`: records that the periodic access review was done.
struct ReviewCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "review", abstract: "Record the periodic access review (who holds which role).",
        subcommands: [Record.self]
    )

    struct Record: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record, in the audit trail, that the access review was done today.",
            discussion: """
                Review first: mamori role list, mamori user list, mamori inspect. Then:
                mamori review record --note "FY2026 review with HR; 3 roles revoked"

                `mamori inspect` fails its access-review check once the last record is older than \
                the policy's accounts: access-review-days.
                """
        )

        @Option(help: "What was reviewed and decided (at most 500 characters; not secret).") var note: String?
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let request = ReviewRecordRequest(note: note)
            guard let review = try connection.call(.reviewRecord, request, reading: ReviewRecordReply.self) else {
                return
            }
            print("Access review recorded at \(review.recorded) (\(review.assignments) current assignments).")
        }
    }
}
