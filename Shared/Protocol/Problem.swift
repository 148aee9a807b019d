import RootcausesJSON

/// One problem with a request, pointing at the field it concerns.
///
/// Requests are checked completely before anything is done, and every problem found is
/// answered, one `details` entry each, so a reporter fixes everything in one round.
public struct Problem: Sendable, Equatable, CustomStringConvertible {
    /// Where: `submission.values[3].value`, `period`, `group_by[1]`.
    public var path: String
    /// A stable, machine-readable code (`missing`, `wrong_type`, `unknown_indicator`, …).
    public var code: String
    /// A sentence for people.
    public var message: String

    public init(path: String, code: String, message: String) {
        self.path = path
        self.code = code
        self.message = message
    }

    public var description: String { "\(path): \(message) [\(code)]" }

    /// The problem as a `details` entry.
    public var json: JSON { ["path": .string(path), "code": .string(code), "message": .string(message)] }
}

extension Problem {
    /// A required field is absent.
    public static func missing(_ path: String) -> Problem {
        Problem(path: path, code: "missing", message: "'\(lastComponent(of: path))' is required")
    }

    /// A field holds the wrong kind of JSON value.
    public static func wrongType(_ path: String, expected: String, found: JSON) -> Problem {
        Problem(
            path: path,
            code: "wrong_type",
            message: "'\(lastComponent(of: path))' must be \(expected), not \(found.kindName)"
        )
    }

    /// A field has the right type but a value that is not allowed.
    public static func invalid(_ path: String, _ message: String) -> Problem {
        Problem(path: path, code: "invalid", message: message)
    }

    private static func lastComponent(of path: String) -> Substring {
        path.split(separator: ".").last ?? Substring(path)
    }
}

extension ProtocolError {
    /// `invalid_request` listing every problem; the message names how many and the first.
    public static func invalidRequest(_ problems: [Problem], lead: String = "the request is malformed") -> ProtocolError
    {
        ProtocolError(.invalidRequest, summary(lead, problems), details: problems.map(\.json))
    }

    /// `validation_failed` listing every problem.
    public static func validationFailed(_ problems: [Problem], lead: String) -> ProtocolError {
        ProtocolError(.validationFailed, summary(lead, problems), details: problems.map(\.json))
    }

    private static func summary(_ lead: String, _ problems: [Problem]) -> String {
        guard let first = problems.first else { return lead }
        let count = problems.count
        return "\(lead): \(count) problem\(count == 1 ? "" : "s"), first: \(first.path): \(first.message)"
    }
}
