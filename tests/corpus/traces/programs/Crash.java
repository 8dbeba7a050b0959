// An order service whose repository fails; the service wraps the cause.
import java.util.HashMap;
import java.util.Map;

public class Crash {
    static class Repository {
        private final Map<String, String> rows = new HashMap<>();

        String find(String id) {
            String row = rows.get(id);
            return row.trim();
        }
    }

    static class OrderService {
        private final Repository repository = new Repository();

        String load(String id) {
            try {
                return repository.find(id);
            } catch (NullPointerException e) {
                throw new IllegalStateException("order " + id + " could not be loaded", e);
            }
        }
    }

    public static void main(String[] args) {
        System.err.println("2026-01-01 12:00:02.000 INFO  [main] shop.Orders - starting");
        new OrderService().load(args.length > 0 ? args[0] : "A-1");
    }
}
