// kgrec's Neo4j launcher for tests and development: Neo4j 5 Community (embedded DBMS API) with its Bolt
// connector on 127.0.0.1 only and authentication on. Usage:
//   java -cp <neo4j classpath>:<dir of this class> KgrecNeo4j HOME PORT PASSWORD [PAGECACHE]
// It sets the password of the built-in user `neo4j` (no change required), prints "READY <port>" on
// stdout once Bolt accepts connections, and shuts the DBMS down cleanly when stdin closes or on SIGTERM.
import java.io.InputStream;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.io.ByteUnit;

public final class KgrecNeo4j {
    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: KgrecNeo4j HOME PORT PASSWORD [PAGECACHE_MB]");
            System.exit(2);
        }
        Path home = Path.of(args[0]);
        int port = Integer.parseInt(args[1]);
        String password = args[2];
        long pagecacheMb = args.length > 3 ? Long.parseLong(args[3]) : 256;
        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(BoltConnector.advertised_address, new SocketAddress("127.0.0.1", port))
                .setConfig(HttpConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pagecacheMb))
                .build();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            dbms.shutdown();
            stopped.countDown();
        }));
        try {
            // The password is a parameter, never spliced into the statement.
            dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED", java.util.Map.of("pw", password));
        } catch (RuntimeException e) {
            // A reused HOME already has this password: fine. Anything else: stop (the hook shuts the DBMS down).
            if (!String.valueOf(e.getMessage()).contains("cannot be the same")) {
                System.err.println("kgrec-neo4j: could not set the password: " + e.getMessage());
                System.exit(1);
            }
        }
        System.out.println("READY " + port);
        System.out.flush();
        InputStream in = System.in;
        while (in.read() != -1) {
            // wait for the parent to close stdin
        }
        System.exit(0);
    }
}
