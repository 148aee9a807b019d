import RootcausesJSON

/// The protocol version this build speaks.
public let protocolVersion = 3

/// A parsed request line.
public struct Request: Sendable {
    /// The client's id, echoed in the answer (`null` when absent).
    public let id: JSON
    public let op: String
    /// The whole request object.
    public let body: JSON

    public init(id: JSON, op: String, body: JSON) {
        self.id = id
        self.op = op
        self.body = body
    }

    /// Parses one line into a request, or the error to answer with.
    public static func parse<Bytes: Collection<UInt8>>(line: Bytes) -> Result<Request, RequestRejection> {
        let json: JSON
        do {
            json = try JSONParser.parse(line)
        } catch {
            return .failure(
                RequestRejection(id: JSON.null, error: ProtocolError(.badJSON, "the line is not valid JSON: \(error)"))
            )
        }
        guard case .object = json else {
            return .failure(
                RequestRejection(
                    id: JSON.null,
                    error: ProtocolError(.badJSON, "a request must be a JSON object, not \(json.kindName)")
                )
            )
        }
        let id = json["id"] ?? .null
        switch id {
        case .null, .string, .number: break
        default:
            return .failure(
                RequestRejection(
                    id: JSON.null,
                    error: ProtocolError(
                        .invalidRequest,
                        "'id' must be a string or a number, not \(id.kindName)",
                        details: [["path": "id", "code": "wrong_type", "message": "'id' must be a string or a number"]]
                    )
                )
            )
        }
        guard let opField = json["op"] else {
            return .failure(
                RequestRejection(
                    id: id,
                    error: ProtocolError(
                        .invalidRequest,
                        "the request has no 'op'",
                        details: [["path": "op", "code": "missing", "message": "'op' is required"]]
                    )
                )
            )
        }
        guard let op = opField.stringValue else {
            return .failure(
                RequestRejection(
                    id: id,
                    error: ProtocolError(
                        .invalidRequest,
                        "'op' must be a string, not \(opField.kindName)",
                        details: [["path": "op", "code": "wrong_type", "message": "'op' must be a string"]]
                    )
                )
            )
        }
        return .success(Request(id: id, op: op, body: json))
    }
}

/// A line that could not be read as a request: the id to answer with (null when unknown) and why.
public struct RequestRejection: Error, Sendable {
    public let id: JSON
    public let error: ProtocolError
}

/// Builds answer lines.
public enum Response {
    /// `{"id":…,"ok":true,…fields}` followed by a newline.
    public static func success(id: JSON, _ fields: [(String, JSON)]) -> JSON {
        .object([("id", id), ("ok", .bool(true))] + fields)
    }

    /// `{"id":…,"ok":false,"error":{…}}`.
    public static func failure(id: JSON, _ error: ProtocolError) -> JSON {
        .object([("id", id), ("ok", .bool(false)), ("error", error.json)])
    }
}
