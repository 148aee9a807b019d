import Foundation
import RootcausesJSON
import RootcausesLocalStack
import RootcausesTesting
import RootcausesTransport
import Subprocess
import SystemPackage
import Testing

extension Integration {
    /// TLS on every port: a CA made at run time (nothing secret is committed), with and without
    /// client certificates, and a plain-text client told clearly what is wrong.
    @Suite struct TLSTests {
        /// A CA, a certificate for 127.0.0.1 signed by it, a client certificate, and a second CA
        /// nobody trusts, made with openssl in a fresh folder.
        struct PKI {
            let folder: String
            var ca: String { folder + "/ca.pem" }
            var serverCertificate: String { folder + "/server.pem" }
            var serverKey: String { folder + "/server.key" }
            var clientCertificate: String { folder + "/client.pem" }
            var clientKey: String { folder + "/client.key" }
            var strangerCA: String { folder + "/stranger.pem" }

            static func make() async throws -> PKI {
                // Not under the test cluster's folder, which its first start empties.
                let folder = "/tmp/rootcauses-pki-\(getpid())-\(UUID().uuidString.prefix(8))"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                let script = """
                    set -e
                    cd '\(folder)'
                    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }
                    key ca.key; key server.key; key client.key; key stranger.key
                    openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj '/CN=Rootcauses test CA'
                    openssl req -x509 -new -key stranger.key -out stranger.pem -days 2 -subj '/CN=Someone else'
                    openssl req -new -key server.key -out server.csr -subj '/CN=127.0.0.1'
                    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > server.ext
                    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null
                    openssl req -new -key client.key -out client.csr -subj '/CN=rootcauses client'
                    printf 'extendedKeyUsage=clientAuth\\n' > client.ext
                    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 -extfile client.ext 2>/dev/null
                    chmod 600 *.key
                    """
                let result = try await Subprocess.run(
                    .path(FilePath("/bin/sh")),
                    arguments: ["-c", script],
                    output: .string(limit: 1 << 16),
                    error: .combinedWithOutput
                )
                guard result.terminationStatus.isSuccess else {
                    throw ClientError("openssl failed: \(result.standardOutput)")
                }
                return PKI(folder: folder)
            }
        }

        @Test func servicesSpeakTLSAndAPlainTextClientIsToldSo() async throws {
            let pki = try await PKI.make()
            defer { try? FileManager.default.removeItem(atPath: pki.folder) }
            let tls = ServiceStack.TLS(certificatePath: pki.serverCertificate, keyPath: pki.serverKey, caPath: pki.ca)
            try await withServiceStack(tls: tls) { stack in
                // The stack's own clients (and intake's nudges) go over TLS.
                let intake = try await stack.intakeClient()
                let accepted = try await intake.expectOK(
                    submitRequest(submission("tls-1", values: [value("firms_supported", "HN", 4)]))
                )
                #expect(accepted["status"] == "accepted")
                let reporting = try await stack.reportingClient()
                let totals = try await reporting.expectOK([
                    "op": "totals", "indicator": "firms_supported", "min_seq": 1, "timeout_ms": 20_000,
                ])
                #expect(totals["rows"]?[0]?["value"] == 4)

                // Plain text on a TLS port: one clear answer, then the connection is closed.
                for address in [stack.intakeAddress, stack.reportingAddress, stack.aggregationAddresses[0]] {
                    let plain = try await ProtocolClient.connect(address: address)
                    let refused = try await plain.request(["op": "ping", "id": 1])
                    #expect(refused.errorCode == "tls_required", "\(refused.serialized)")
                    #expect(refused["id"] == .null)
                    await plain.close()
                }

                // A client that trusts another CA does not get through.
                let stranger = try TLSClientSettings(caPath: pki.strangerCA).makeContext()
                let wary = try await ProtocolClient.connect(address: stack.reportingAddress, tls: stranger)
                await #expect(throws: (any Error).self) { _ = try await wary.request(["op": "ping"]) }
                await wary.close()
                await intake.close()
                await reporting.close()
            }
        }

        @Test func clientCertificatesAreRequiredWhenAskedFor() async throws {
            let pki = try await PKI.make()
            defer { try? FileManager.default.removeItem(atPath: pki.folder) }
            let tls = ServiceStack.TLS(
                certificatePath: pki.serverCertificate,
                keyPath: pki.serverKey,
                caPath: pki.ca,
                clientCAPath: pki.ca,
                clientCertificatePath: pki.clientCertificate,
                clientKeyPath: pki.clientKey
            )
            try await withServiceStack(tls: tls) { stack in
                // With the client certificate: served (and intake's nudges present intake's).
                let intake = try await stack.intakeClient()
                #expect(try await intake.request(["op": "ping"])["ok"] == true)
                _ = try await intake.expectOK(
                    submitRequest(submission("mtls-1", values: [value("firms_supported", "GT", 2)]))
                )
                let reporting = try await stack.reportingClient()
                let totals = try await reporting.expectOK([
                    "op": "totals", "indicator": "firms_supported", "min_seq": 1, "timeout_ms": 20_000,
                ])
                #expect(totals["rows"]?[0]?["value"] == 2)
                // Without one: the handshake fails.
                let anonymous = try TLSClientSettings(caPath: pki.ca).makeContext()
                let refused = try await ProtocolClient.connect(address: stack.reportingAddress, tls: anonymous)
                await #expect(throws: (any Error).self) { _ = try await refused.request(["op": "ping"]) }
                await refused.close()
                await intake.close()
                await reporting.close()
            }
        }
    }
}
