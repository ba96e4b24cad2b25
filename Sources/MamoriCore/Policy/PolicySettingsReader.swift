import Foundation
internal import Yams

/// Reading the `settings` section: the time zone, Argon2 and TOTP parameters, the lockouts,
/// sessions, the audit retention and the account checks, each with its default and its range.
extension PolicyAssembler {
    mutating func readSettings(_ key: Node, _ node: Node, _ reader: inout YAMLReader) {
        guard settings == nil else {
            reader.error(key, "Settings are given in more than one file; keep them in one.")
            return
        }
        let defaults = PolicySettings.defaults
        guard
            let fields = reader.mapping(
                node, what: "settings",
                allowed: [
                    "time-zone", "password", "totp", "lockout", "privileged-lockout", "session", "audit", "accounts",
                    "offline",
                ])
        else { return }
        var timeZone = defaults.timeZone
        if let zoneNode = fields["time-zone"]?.value, let name = reader.string(zoneNode, what: "time-zone") {
            if let zone = TimeZone(identifier: name.value) {
                timeZone = zone
            } else {
                reader.error(zoneNode, "Unknown time zone '\(name.value)'; use an IANA name such as Asia/Tokyo.")
            }
        }
        var argon2 = defaults.argon2
        if let node = fields["password"]?.value,
            let password = reader.mapping(
                node, what: "password settings", allowed: ["memory-kib", "iterations", "parallelism"])
        {
            argon2 = Argon2Parameters(
                memoryKiB: password["memory-kib"].flatMap {
                    reader.integer($0.value, what: "memory-kib", in: 8...4_194_304)
                }.map(UInt32.init) ?? argon2.memoryKiB,
                iterations: password["iterations"].flatMap { reader.integer($0.value, what: "iterations", in: 1...64) }
                    .map(UInt32.init) ?? argon2.iterations,
                parallelism: password["parallelism"].flatMap {
                    reader.integer($0.value, what: "parallelism", in: 1...64)
                }.map(UInt32.init) ?? argon2.parallelism
            )
            do { try argon2.validate() } catch { reader.error(node, error.message) }
        }
        var totp = defaults.totp
        var window = defaults.totpWindow
        if let node = fields["totp"]?.value,
            let fields = reader.mapping(
                node, what: "totp settings", allowed: ["algorithm", "digits", "period", "window"])
        {
            var algorithm = totp.algorithm
            if let text = fields["algorithm"].flatMap({ reader.string($0.value, what: "algorithm") }) {
                if let value = OTPAlgorithm(rawValue: text.value) {
                    algorithm = value
                } else if let node = fields["algorithm"]?.value {
                    reader.error(node, "The TOTP algorithm is sha1, sha256 or sha512.")
                }
            }
            let digits = fields["digits"].flatMap { reader.integer($0.value, what: "digits", in: 6...8) } ?? totp.digits
            let period =
                fields["period"].flatMap { reader.integer($0.value, what: "period", in: 5...600) } ?? totp.period
            window =
                fields["window"].flatMap { reader.integer($0.value, what: "window", in: 0...TOTP.maximumWindow) }
                ?? window
            if let parameters = try? OTPParameters(algorithm: algorithm, digits: digits, period: period) {
                totp = parameters
            }
        }
        func lockout(_ name: String, _ fallback: LockoutSettings) -> LockoutSettings {
            guard let node = fields[name]?.value,
                let lock = reader.mapping(
                    node, what: "\(name) settings", allowed: ["failures", "window-minutes", "lock-minutes"])
            else { return fallback }
            return LockoutSettings(
                failures: lock["failures"].flatMap { reader.integer($0.value, what: "failures", in: 1...1000) }
                    ?? fallback.failures,
                windowMinutes: lock["window-minutes"].flatMap {
                    reader.integer($0.value, what: "window-minutes", in: 1...10_080)
                } ?? fallback.windowMinutes,
                lockMinutes: lock["lock-minutes"].flatMap {
                    reader.integer($0.value, what: "lock-minutes", in: 1...525_600)
                } ?? fallback.lockMinutes
            )
        }
        let ordinary = lockout("lockout", defaults.lockout)
        let privileged = lockout("privileged-lockout", defaults.privilegedLockout)
        if privileged.failures > ordinary.failures, let node = fields["privileged-lockout"]?.value {
            reader.warning(
                node,
                "Privileged accounts lock after more failures than ordinary ones; the guideline asks for stricter.")
        }
        var idle = defaults.sessionIdleMinutes
        var maximumHours = defaults.sessionMaximumHours
        if let node = fields["session"]?.value,
            let session = reader.mapping(node, what: "session settings", allowed: ["idle-minutes", "maximum-hours"])
        {
            idle =
                session["idle-minutes"].flatMap { reader.integer($0.value, what: "idle-minutes", in: 1...1440) } ?? idle
            maximumHours =
                session["maximum-hours"].flatMap { reader.integer($0.value, what: "maximum-hours", in: 1...168) }
                ?? maximumHours
        }
        var retention = defaults.auditRetentionYears
        var allowedDecisions = defaults.auditAllowedDecisions
        if let node = fields["audit"]?.value,
            let audit = reader.mapping(
                node, what: "audit settings", allowed: ["retention-years", "record-allowed-decisions"])
        {
            retention =
                audit["retention-years"].flatMap { reader.integer($0.value, what: "retention-years", in: 1...100) }
                ?? retention
            allowedDecisions =
                audit["record-allowed-decisions"].flatMap { reader.bool($0.value, what: "record-allowed-decisions") }
                ?? allowedDecisions
        }
        var idleDays = defaults.idleAccountDays
        var reviewDays = defaults.accessReviewDays
        if let node = fields["accounts"]?.value,
            let accounts = reader.mapping(node, what: "account settings", allowed: ["idle-days", "access-review-days"])
        {
            idleDays =
                accounts["idle-days"].flatMap { reader.integer($0.value, what: "idle-days", in: 1...3650) } ?? idleDays
            reviewDays =
                accounts["access-review-days"].flatMap {
                    reader.integer($0.value, what: "access-review-days", in: 1...3650)
                } ?? reviewDays
        }
        var offline = OfflineSettings.defaults
        if let node = fields["offline"]?.value,
            let fields = reader.mapping(
                node, what: "offline settings", allowed: ["roles", "window-hours", "maximum-age-days", "failures"])
        {
            offlineLocation = reader.location(of: node)
            offlineRoles =
                fields["roles"].map { reader.list($0.value, what: "Offline roles") }?
                .compactMap { reader.string($0, what: "A role") } ?? []
            offline = OfflineSettings(
                roles: Set(offlineRoles.map(\.value)),
                windowHours: fields["window-hours"].flatMap {
                    reader.integer($0.value, what: "window-hours", in: 1...720)
                } ?? offline.windowHours,
                maximumAgeDays: fields["maximum-age-days"].flatMap {
                    reader.integer($0.value, what: "maximum-age-days", in: 1...90)
                } ?? offline.maximumAgeDays,
                failures: fields["failures"].flatMap { reader.integer($0.value, what: "failures", in: 1...100) }
                    ?? offline.failures)
            if offline.failures > ordinary.failures {
                reader.warning(
                    node,
                    "Offline logins lock after more failures (\(offline.failures)) than online ones (\(ordinary.failures))."
                )
            }
        }
        settings = PolicySettings(
            timeZone: timeZone, argon2: argon2, totp: totp, totpWindow: window, lockout: ordinary,
            privilegedLockout: privileged, sessionIdleMinutes: idle, sessionMaximumHours: maximumHours,
            auditRetentionYears: retention, auditAllowedDecisions: allowedDecisions, idleAccountDays: idleDays,
            accessReviewDays: reviewDays, offline: offline
        )
    }
}
